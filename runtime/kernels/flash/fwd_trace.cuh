// Dev timeline of the warp-specialized forward (flash/fwd_sm90_ws.cuh; read by scripts/dev/flash_fwd_dev.py
// trace): clock64 at the phase boundaries of each row block, per warpgroup, into a device array. Built
// with -DATTNFORGE_FLASH_FWD_TRACE=1 only; in every library build AF_FWD_TRACE expands to nothing.
#pragma once

#ifndef ATTNFORGE_FLASH_FWD_TRACE
#define ATTNFORGE_FLASH_FWD_TRACE 0
#endif

#if ATTNFORGE_FLASH_FWD_TRACE
namespace attnforge::flash::fwd_trace {
// (CTA, role: producer, consumers 1 … 3, kernel; row block, event); events in fwd_sm90_ws.cuh:
// consumers 0 block start, 1 Q landed, 11 K_0 landed, 2 first turn, 3 S_0 landed, 4 P_0 ready, 12 first
// steady turn, 14 last steady turn, 13 last P·V's turn, 10 last P·V issued, 5 last P·V done, 8 O
// finalized, 9 O staged, 6 O stored, 7 key tiles consumed so far; producer 0 block start, 3 K_0's stage
// free, 1 Q slot free, 2 Q issued; kernel (block 0) 0/1 clock/globaltimer at start, 2/3 at the end.
constexpr int kCtas = 132, kRoles = 5, kBlocks = 64, kEvents = 16;
__device__ long long g[kCtas][kRoles][kBlocks][kEvents];
__device__ __forceinline__ long long now() { return clock64(); }
__device__ __forceinline__ long long gtime() {
  long long x;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(x));
  return x;
}
__device__ __forceinline__ void mark(int role, int blk, int ev, long long v) {
  if (blockIdx.x < kCtas && blk < kBlocks) g[blockIdx.x][role][blk][ev] = v;
}
}  // namespace attnforge::flash::fwd_trace
#define AF_FWD_TRACE(cond, role, blk, ev, val)       \
  do {                                               \
    if (cond) ::attnforge::flash::fwd_trace::mark(role, blk, ev, val); \
  } while (0)
#else
#define AF_FWD_TRACE(...) \
  do {                    \
  } while (0)
#endif
