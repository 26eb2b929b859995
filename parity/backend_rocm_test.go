//go:build rocm

package parity

// -tags rocm tests the HIP kernels built for AMD (MI300X: gfx942) with hipcc.
const (
	backendKind = "rocm"
	defaultLib  = "build/libgreta_parity_rocm.so"
	buildHint   = "make kernels-rocm"
	// refdevName is the float64 reference's GPU library beside the library
	// under test (-parity.refdev auto); "" for none.
	refdevName = "libgreta_parity_refdev_rocm.so"
)
