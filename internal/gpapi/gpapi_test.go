package gpapi

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCapabilities(t *testing.T) {
	for in, want := range map[string][]Capability{
		"":                 nil,
		"faults":           {CapFaults},
		" routes , fused ": {CapRoutes, CapFused},
		"all":              Capabilities,
	} {
		got, err := ParseCapabilities(in)
		require.NoError(t, err, "ParseCapabilities(%q)", in)
		assert.Empty(t, cmp.Diff(want, got), "ParseCapabilities(%q) (-want +got)", in)
	}
	_, err := ParseCapabilities("faults,atestation")
	require.ErrorContains(t, err, `unknown capability "atestation"`)
	for _, c := range Capabilities {
		assert.ErrorContains(t, err, string(c), "the error lists the valid capabilities")
	}
}

func TestParseRoute(t *testing.T) {
	for _, r := range []Route{RouteAuto, RouteMFMA, RouteVALU} {
		got, err := ParseRoute(r.String())
		require.NoError(t, err)
		assert.Equal(t, r, got, "ParseRoute(%q)", r)
	}
	got, err := ParseRoute("MFMA")
	require.NoError(t, err)
	assert.Equal(t, RouteMFMA, got, "ParseRoute is case-insensitive")
	// BLAS is not batch invariant: never a route of the table's columns.
	_, err = ParseRoute("blas")
	assert.ErrorContains(t, err, "valid: auto, mfma, valu")
}

// TestSymbolsMatchHeader: the binding's symbol tables and the C header
// agree. Every gp_ function greta_parity.h declares is core (the CPU core
// library's export list, kernels/cpu/core_only.map, less its gp_attention)
// or belongs to exactly one capability, and every capability symbol is
// declared there.
func TestSymbolsMatchHeader(t *testing.T) {
	h, err := os.ReadFile("../../kernels/include/greta_parity.h")
	require.NoError(t, err)
	m, err := os.ReadFile("../../kernels/cpu/core_only.map")
	require.NoError(t, err)
	var declared, core, bound []string
	for _, g := range regexp.MustCompile(`(?m)^[a-z].*\b(gp_[a-z0-9_]+)\(`).FindAllSubmatch(h, -1) {
		declared = append(declared, string(g[1]))
	}
	for _, g := range regexp.MustCompile(`(?m)^\s*(gp_[a-z0-9_]+);`).FindAllSubmatch(m, -1) {
		if s := string(g[1]); s != "gp_attention" {
			core = append(core, s)
		}
	}
	require.NotEmpty(t, core)
	bound = append(bound, core...)
	for _, c := range Capabilities {
		syms := CapabilitySymbols(c)
		assert.NotEmpty(t, syms, "capability %s has no symbols", c)
		bound = append(bound, syms...)
	}
	slices.Sort(declared)
	slices.Sort(bound)
	assert.Empty(t, cmp.Diff(declared, bound), "gp_ functions (-declared in greta_parity.h +core and capability tables)")
}

func TestOpenMissingLibrary(t *testing.T) {
	lib, err := Open("/nonexistent/libgreta.so")
	assert.Nil(t, lib)
	var le *LoadError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "library not found", le.Reason)
	assert.Equal(t, "/nonexistent/libgreta.so", le.Path)
}
