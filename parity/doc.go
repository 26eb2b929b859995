// Package parity is the decode-vs-prefill parity suite. Its tests drive a
// kernel library that implements kernels/include/greta_parity.h — the CPU
// backend by default, the HIP kernels with -tags rocm or -tags cuda, or any
// engine library named by -parity.lib or GRETA_KERNELS_LIB — and check, for
// every sub-stage of the attention block, that the single-token decode path
// computes what row S-1 of the prefill path computes, and that both agree
// with a float64 reference.
//
//	go test ./parity                      # CPU backend (make kernels-cpu first)
//	go test ./parity -tags rocm           # MI300X (make kernels-rocm first)
//	go test ./parity -tags cuda -parity.require-device
//
// The flags are namespaced -parity.*; see flags_test.go and README.md.
package parity
