# CPU backend of the kernel ABI (placeholder; see kernels/cpu).
.PHONY: kernels-cpu
kernels-cpu: $(CPU_LIB)
