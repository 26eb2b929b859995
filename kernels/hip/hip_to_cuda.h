/*
 * hip_to_cuda.h: the HIP names the kernels in kernels/hip use, aliased flat to
 * CUDA, so that one HIP-dialect source tree also builds with nvcc (the reverse
 * of llama.cpp's ggml-cuda/vendors/hip.h).
 *
 * Included by gp_hip.h for nvcc builds only. HIP's own NVIDIA headers
 * (hip/nvidia_detail, HIP 5.2 in Debian) do not compile against CUDA 13, so
 * they are not used. Only the names the sources use are listed; add a line
 * here, never an #ifdef in a kernel, when a source needs another one.
 */
#ifndef GP_HIP_TO_CUDA_H
#define GP_HIP_TO_CUDA_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

/* ---- runtime API ---- */
#define hipError_t cudaError_t
#define hipSuccess cudaSuccess
#define hipErrorOutOfMemory cudaErrorMemoryAllocation
#define hipErrorNoDevice cudaErrorNoDevice
#define hipGetErrorString cudaGetErrorString
#define hipGetErrorName cudaGetErrorName
#define hipGetLastError cudaGetLastError
#define hipPeekAtLastError cudaPeekAtLastError
#define hipGetDeviceCount cudaGetDeviceCount
#define hipGetDevice cudaGetDevice
#define hipGetDeviceProperties cudaGetDeviceProperties
#define hipDeviceProp_t cudaDeviceProp
#define hipDeviceSynchronize cudaDeviceSynchronize
#define hipMalloc cudaMalloc
#define hipFree cudaFree
#define hipMemcpy cudaMemcpy
#define hipHostMalloc cudaHostAlloc
#define hipHostMallocPortable cudaHostAllocPortable
#define hipHostFree cudaFreeHost
#define hipMemcpyHostToDevice cudaMemcpyHostToDevice
#define hipMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define hipMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define hipMemcpyAsync cudaMemcpyAsync
#define hipStream_t cudaStream_t
#define hipStreamCreateWithFlags cudaStreamCreateWithFlags
#define hipStreamNonBlocking cudaStreamNonBlocking
#define hipStreamSynchronize cudaStreamSynchronize
#define hipStreamDestroy cudaStreamDestroy
#define hipFuncSetAttribute cudaFuncSetAttribute
#define hipFuncAttributeMaxDynamicSharedMemorySize cudaFuncAttributeMaxDynamicSharedMemorySize

/* hipLaunchKernelGGL(kernel, grid, block, shared_bytes, stream, args...) */
#define hipLaunchKernelGGL(kernel, grid, block, shmem, stream, ...)                                \
    kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__)

/* ---- device code ---- */
/* HIP's shuffles act on the whole wavefront; CUDA's need the member mask.
 * Every caller has all 32 lanes of the warp active. */
#define __shfl_xor(v, m) __shfl_xor_sync(0xffffffffu, (v), (m))
#define __shfl(v, l) __shfl_sync(0xffffffffu, (v), (l))

#endif /* GP_HIP_TO_CUDA_H */
