package parity

import (
	"flag"
	"time"
)

// The suite's flags, namespaced like rapid's -rapid.* flags.
var (
	flagLib = flag.String("parity.lib", "",
		"kernel library to test (default: $GRETA_KERNELS_LIB, then "+defaultLib+" under the module root)")
	flagRequireDevice = flag.Bool("parity.require-device", false,
		"fail, instead of skipping, when no device or no library is available (for GPU runners)")
	flagBitwise = flag.Bool("parity.bitwise", false,
		"require decode == prefill bit for bit on every route (forced routes always do)")
	flagFull = flag.Bool("parity.full", backendKind != "cpu",
		"run the full model × S × dtype × route matrix (default on GPU backends; the CPU default is a subset)")
	flagTimeout = flag.Duration("parity.timeout", 2*time.Minute,
		"watchdog: a kernel call that does not return within this fails its stage instead of hanging")
	flagArtifacts = flag.String("parity.artifacts", "",
		"folder for failing cases' reports, traces, heatmaps and the run summary (default: a fresh parity-artifacts/run-<time>-<pid> under the system temp dir for each run)")
	flagList = flag.Bool("parity.list", false,
		"print the full subtest paths of TestParity and TestMutations that -run/-skip select, then exit without running a case (go test shows a passing package's output with -v: go test ./parity -parity.list -v)")
	flagModels = flag.String("parity.models", "",
		"comma-separated model fixture names to run (default: all)")
	flagSeed     = flag.Uint64("parity.seed", 1, "seed of the table-driven cases' inputs")
	flagContract = flag.String("parity.contract", "strict",
		"accuracy contract of the local bounds: strict (f32 accumulation, one rounding to the storage dtype) or engine (plus tolerance.EngineRoundings extra roundings of intermediates; bitwise only where the library declares batch invariance)")
	flagRequire = flag.String("parity.require", "",
		"comma-separated capabilities whose absence fails instead of skipping (faults, attestation, d2d, routes, unfused, fused, invariance, batched, mlp, or all)")
	flagExpectRoutes = flag.String("parity.expect-routes", "prefill:mfma,decode:valu",
		"routes AUTO must run for the projections, as prefill:ROUTE,decode:ROUTE (this repo's backends); none = report the attested routes without checking them (an engine with its own policy)")
)

var flagSoak = flag.Duration("parity.soak", 0,
	"keep drawing random cases (the property generator) for this long and report cases run and failures; 0 = off")

var flagReplay = flag.String("parity.replay", "",
	"TestPropertyParity runs only this case (the JSON its failure message prints), with or without rapid's fail files")
