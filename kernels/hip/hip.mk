# HIP kernels for ROCm and CUDA (placeholder; see kernels/hip).
.PHONY: kernels-cuda kernels-rocm check-rocm
