// Programmatic dependent launch (sm_90): a kernel launched with `overlap` may start its CTAs while the
// previous kernel of the stream still runs, once every CTA of that one has called allow_dependents()
// (or exited); wait_prior_grid() then blocks until the previous kernel has finished and its writes are
// visible. Also the per-(batch, head) arrival counters that let a dependent consume finished parts early.
#pragma once
#include <cuda_runtime.h>

#include <utility>

namespace attnforge::prim::overlap {

// ---- device ---------------------------------------------------------------------------------------
// Both are no-ops in a kernel launched without `overlap`, and before sm_90.
__device__ __forceinline__ void wait_prior_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// One arrival on `counter` that publishes the CTA's writes before it (CUTLASS's semaphore pattern):
// threads whose bulk-async writes (cp.reduce.async.bulk) have completed call async_writes_to_generic(),
// the CTA meets on a barrier, then one thread calls arrive() (a GPU-scope release: cumulative over the
// writes the barrier ordered before it).
__device__ __forceinline__ void async_writes_to_generic() {
  asm volatile("fence.proxy.async.global;\n" ::: "memory");
}
__device__ __forceinline__ void arrive(int* counter) {
  asm volatile("fence.acq_rel.gpu;\nred.relaxed.gpu.global.add.s32 [%0], 1;\n" ::"l"(counter) : "memory");
}
// Spins until `counter` reaches `target`; the caller's later reads (after a CTA barrier) see every
// write published by the arrivals it counted.
__device__ __forceinline__ void wait_count(const int* counter, int target) {
  int v;
  for (;;) {
    asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(counter) : "memory");
    if (v >= target) break;
    __nanosleep(256);
  }
}

// ---- host -----------------------------------------------------------------------------------------
// kernel<<<grid, block, smem, stream>>>(args...), allowed to overlap the previous kernel of the stream
// when `overlap` (the kernel must then call wait_prior_grid() before it reads what that kernel wrote).
template <class... KArgs, class... Args>
cudaError_t launch(bool overlap, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   Args&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = &attr;
  cfg.numAttrs = overlap ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace attnforge::prim::overlap
