package gpapi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ebitengine/purego"
)

// Capability is an optional part of ABI 3: a library implements it by
// exporting every one of its symbols, and the harness finds it by symbol
// lookup. Tests that need a missing capability skip with a reason naming
// the missing symbols (MissingError); -parity.require turns that into a
// failure.
type Capability string

// The capabilities (greta_parity.h, "capabilities").
const (
	CapFaults      Capability = "faults"      // gp_set_fault & co: the mutation suite
	CapAttestation Capability = "attestation" // gp_last_launch: which kernel ran
	CapD2D         Capability = "d2d"         // gp_memcpy_d2d: the benchmarks' copy anchor
	CapRoutes      Capability = "routes"      // gp_forced_routes: forced MFMA/VALU/BLAS routes
	CapUnfused     Capability = "unfused"     // gp_attn_scores, gp_softmax, gp_attn_pv
	CapFused       Capability = "fused"       // gp_attention
	CapInvariance  Capability = "invariance"  // gp_batch_invariant_stages
	CapBatched     Capability = "batched"     // gp_kv_append_batched, gp_attention_batched: B sequences per call
	CapMLP         Capability = "mlp"         // gp_residual_add, gp_rmsnorm_offset, gp_gated_act: the rest of the layer
)

// Capabilities lists every capability in a fixed order.
var Capabilities = []Capability{CapFaults, CapAttestation, CapD2D, CapRoutes, CapUnfused, CapFused, CapInvariance, CapMLP, CapBatched}

// ParseCapabilities parses a comma-separated list ("all" = every one).
func ParseCapabilities(s string) ([]Capability, error) {
	var out []Capability
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case f == "all":
			out = append(out, Capabilities...)
		case slices.Contains(Capabilities, Capability(f)):
			out = append(out, Capability(f))
		default:
			return nil, fmt.Errorf("unknown capability %q (valid: all, %s)", f, capList(Capabilities))
		}
	}
	return out, nil
}

func capList(cs []Capability) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// capSymbols binds each capability's symbols to the Lib's funcs.
func (l *Lib) capSymbols() map[Capability][]struct {
	fn   any
	name string
} {
	type sym = struct {
		fn   any
		name string
	}
	return map[Capability][]sym{
		CapFaults:      {{&l.setFault, "gp_set_fault"}, {&l.activeFault, "gp_active_fault"}, {&l.faultCount, "gp_fault_count"}, {&l.faultName, "gp_fault_name"}},
		CapAttestation: {{&l.lastLaunch, "gp_last_launch"}},
		CapD2D:         {{&l.memcpyD2D, "gp_memcpy_d2d"}},
		CapRoutes:      {{&l.forcedRoutes, "gp_forced_routes"}},
		CapUnfused:     {{&l.attnScores, "gp_attn_scores"}, {&l.softmax, "gp_softmax"}, {&l.attnPV, "gp_attn_pv"}},
		CapFused:       {{&l.attention, "gp_attention"}},
		CapInvariance:  {{&l.batchInvariantStages, "gp_batch_invariant_stages"}},
		CapBatched:     {{&l.kvAppendBatched, "gp_kv_append_batched"}, {&l.attentionBatched, "gp_attention_batched"}},
		CapMLP:         {{&l.residualAdd, "gp_residual_add"}, {&l.rmsnormOffset, "gp_rmsnorm_offset"}, {&l.gatedAct, "gp_gated_act"}},
	}
}

// CapabilitySymbols returns the C symbols that make up capability c.
func CapabilitySymbols(c Capability) []string {
	var l Lib
	var out []string
	for _, s := range l.capSymbols()[c] {
		out = append(out, s.name)
	}
	return out
}

// bindCapabilities looks up every capability's symbols: all present binds
// it, none present leaves it absent, some present is a load error (a
// half-implemented capability would fail in confusing ways later). A
// library needs at least one of the attention capabilities.
func (l *Lib) bindCapabilities() error {
	l.caps = map[Capability]bool{}
	for _, c := range Capabilities {
		syms := l.capSymbols()[c]
		var found, missing []string
		for _, s := range syms {
			if p, err := purego.Dlsym(l.handle, s.name); err == nil && p != 0 {
				found = append(found, s.name)
			} else {
				missing = append(missing, s.name)
			}
		}
		switch {
		case len(missing) == 0:
			for _, s := range syms {
				if err := l.bind(s.fn, s.name); err != nil {
					return err
				}
			}
			l.caps[c] = true
		case len(found) > 0:
			return &LoadError{Path: l.Path, Reason: "partial capability " + string(c),
				Err: fmt.Errorf("exports %s but not %s: a capability is all of its symbols or none", strings.Join(found, ", "), strings.Join(missing, ", "))}
		}
	}
	if !l.caps[CapUnfused] && !l.caps[CapFused] {
		return &LoadError{Path: l.Path, Reason: "no attention",
			Err: fmt.Errorf("the library implements neither unfused attention (%s) nor fused attention (%s)",
				strings.Join(CapabilitySymbols(CapUnfused), ", "), strings.Join(CapabilitySymbols(CapFused), ", "))}
	}
	return nil
}

// Has reports whether the library implements capability c.
func (l *Lib) Has(c Capability) bool { return l.caps[c] }

// Missing returns the capabilities the library lacks.
func (l *Lib) Missing() []Capability {
	var out []Capability
	for _, c := range Capabilities {
		if !l.caps[c] {
			out = append(out, c)
		}
	}
	return out
}

// MissingError says that a library lacks a capability, naming its symbols.
type MissingError struct {
	Backend string
	Cap     Capability
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("library %q lacks capability %s (does not export %s)", e.Backend, e.Cap, strings.Join(CapabilitySymbols(e.Cap), ", "))
}

// Need returns a *MissingError when the library lacks c, else nil.
func (l *Lib) Need(c Capability) error {
	if l.caps[c] {
		return nil
	}
	return &MissingError{Backend: l.Backend, Cap: c}
}

// ForcedRoutes returns the routes gp_linear accepts besides AUTO (none
// without the routes capability).
func (l *Lib) ForcedRoutes() []Route {
	if !l.caps[CapRoutes] {
		return nil
	}
	l.mu.Lock()
	mask := l.forcedRoutes()
	l.mu.Unlock()
	var out []Route
	for _, r := range []Route{RouteMFMA, RouteVALU, RouteBLAS} {
		if mask&(1<<r) != 0 {
			out = append(out, r)
		}
	}
	return out
}

// SupportsRoute reports whether gp_linear accepts route r (AUTO always).
func (l *Lib) SupportsRoute(r Route) bool {
	return r == RouteAuto || slices.Contains(l.ForcedRoutes(), r)
}

// BatchInvariantStages returns the stage names the library declares batch
// invariant (gp_batch_invariant_stages), nil without the capability.
func (l *Lib) BatchInvariantStages() []string {
	if !l.caps[CapInvariance] {
		return nil
	}
	l.mu.Lock()
	s := l.batchInvariantStages()
	l.mu.Unlock()
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
