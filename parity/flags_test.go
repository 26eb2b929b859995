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
		"folder for failing cases' traces, heatmaps and the run summary (default: a parity-artifacts folder under the system temp dir)")
	flagModels = flag.String("parity.models", "",
		"comma-separated model fixture names to run (default: all)")
	flagSeed = flag.Uint64("parity.seed", 1, "seed of the table-driven cases' inputs")
)

var flagSoak = flag.Duration("parity.soak", 0,
	"keep drawing random cases (the property generator) for this long and report cases run and failures; 0 = off")
