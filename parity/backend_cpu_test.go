//go:build !cuda && !rocm

package parity

// The default build tests the CPU implementation of the ABI.
const (
	backendKind = "cpu"
	defaultLib  = "build/libgreta_parity_cpu.so"
	buildHint   = "make kernels-cpu"
	// refdevName is the float64 reference's GPU library beside the library
	// under test (-parity.refdev auto); "" for none.
	refdevName = ""
)
