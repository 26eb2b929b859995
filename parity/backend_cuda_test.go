//go:build cuda

package parity

// -tags cuda tests the HIP kernels built for NVIDIA with nvcc.
const (
	backendKind = "cuda"
	defaultLib  = "build/libgreta_parity_cuda.so"
	buildHint   = "make kernels-cuda"
)
