//go:build rocm

package parity

// -tags rocm tests the HIP kernels built for AMD (MI300X: gfx942) with hipcc.
const (
	backendKind = "rocm"
	defaultLib  = "build/libgreta_parity_rocm.so"
	buildHint   = "make kernels-rocm"
)
