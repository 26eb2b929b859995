//go:build cuda

package parity

// -tags cuda tests the HIP kernels built for NVIDIA with nvcc.
const (
	backendKind = "cuda"
	defaultLib  = "build/libgreta_parity_cuda.so"
	buildHint   = "make kernels-cuda"
	// refdevName is the float64 reference's GPU library beside the library
	// under test (-parity.refdev auto); "" for none.
	refdevName = "libgreta_parity_refdev_cuda.so"
)
