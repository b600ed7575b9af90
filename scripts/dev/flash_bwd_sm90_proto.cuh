// PROTOTYPE — NEVER RUN ON A GPU (written 2026-11-29 after the session's device time was spent).
// The flash backward on Hopper warpgroup MMA, for the dev driver only: scripts/dev/flash_bwd_dev.cu
// runs it instead of flash::run_bwd<V> when built with -DATTNFORGE_FLASH_BWD_SM90_PROTO (GROUP 4).
// Not part of the library; move it to runtime/kernels/flash/ once it passes there and beats the
// mma.sync kernel (bench/NOTES-flash-bwd.md, "Next").
//
// A CTA owns 128 keys of one (sequence, kv head): two consumer warpgroups of 64 keys each (256
// threads). It loops over the query heads of the group and the 64-query tiles the mask leaves
// non-empty. Per query tile, in the transposed form (FA3's) so that Pᵀ and dSᵀ leave the
// accumulators already laid out as wgmma A operands:
//   Sᵀ = K_w·Qᵀ, dPᵀ = V_w·dOᵀ              wgmma SS, (64 keys × 64 queries) per warpgroup
//   Pᵀ = exp2(Sᵀ·c − LSE·log2e)             registers; dSᵀ = Pᵀ ∘ (dPᵀ − D)
//   dV_w += Pᵀ·dO, dK_w += dSᵀ·Q             wgmma RS, A = Pᵀ / dSᵀ from registers, B MN-major
//   dSᵀ → shared memory (keys × queries); barrier
//   dQ += dS·K                                wgmma SS with A and B MN-major (head dim 128: each
//                                             warpgroup one 64-column half; 64: each its own keys),
//                                             fp32 atomics into a linear (total_q, Hq, D) accumulator
// Head dims 64 and 128, f16/bf16, every mask kind without a tensor, varlen, GQA; not deterministic.
// Every wgmma group is waited for at once (no overlap yet): first make it right, then fast.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/copy.cuh"
#include "common/mask_apply.cuh"
#include "common/numeric.cuh"
#include "common/params.hpp"
#include "common/smem_layout.cuh"
#include "common/wgmma.cuh"
#include "flash/bwd_prepost.cuh"
#include "flash/bwd_workspace.hpp"

namespace attnforge::flash::sm90proto {

// D (64, 64) += A (64, 16) · B (16, 64) with A and B both MN-major in shared memory (transposed
// operands, 16-bit types only).
template <DType T>
struct WgmmaTT64;
template <>
struct WgmmaTT64<DType::bf16> {
  template <bool kAccumulate>
  __device__ __forceinline__ static void ss(float (&d)[8][4], uint64_t da, uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 1, 1;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
        : "l"(da), "l"(db), "n"(int(kAccumulate)));
  }
};

template <>
struct WgmmaTT64<DType::f16> {
  template <bool kAccumulate>
  __device__ __forceinline__ static void ss(float (&d)[8][4], uint64_t da, uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 1, 1;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
        : "l"(da), "l"(db), "n"(int(kAccumulate)));
  }
};

template <class V>
struct Cfg {
  static constexpr DType kDType = V::kDType;
  using Num = prim::Numeric<kDType>;
  using Element = typename Num::Element;
  using Mask = typename V::Mask;
  static constexpr int kD = V::kHeadDim;
  static constexpr int kBlockM = 64;   // queries per step
  static constexpr int kBlockN = 128;  // keys per CTA: 64 per consumer warpgroup
  static constexpr int kThreads = 256;
  static_assert(kD == 64 || kD == 128, "prototype: head dim 64 or 128");
  static_assert(!Mask::kHasTensor, "prototype: mask kinds without a tensor");
  using QL = prim::SmemTileSw128<kBlockM, kD>;       // Q or dO tile (64 queries, D)
  using KL = prim::SmemTileSw128<kBlockN, kD>;       // K or V (128 keys, D)
  using SL = prim::SmemTileSw128<kBlockN, kBlockM>;  // dSᵀ (128 keys, 64 queries)
  // [K][V][Q × 2][dO × 2][dSᵀ][LSE × 2][D × 2], every tile 1024-byte aligned (the swizzle's atom).
  static constexpr int kOffK = 0;
  static constexpr int kOffV = kOffK + KL::kBytes;
  static constexpr int kOffQ = kOffV + KL::kBytes;
  static constexpr int kOffDO = kOffQ + 2 * QL::kBytes;
  static constexpr int kOffDS = kOffDO + 2 * QL::kBytes;
  static constexpr int kOffLse = kOffDS + SL::kBytes;
  static constexpr int kOffDsum = kOffLse + 2 * kBlockM * 4;
  // Version 1 only: two dQ staging buffers of (64 queries, D) fp32 in fragment order (dq_frag_offset).
  static constexpr int kDqBufBytes = 2 * 64 * 64 * 4;  // per step: a 64 × 64 block per warpgroup
  static constexpr int kOffDq = kOffDsum + 2 * kBlockM * 4;
  static constexpr int kSmemBytesV0 = kOffDq + 1024;  // + 1024: base alignment
  static constexpr int kSmemBytesV1 = kOffDq + 2 * kDqBufBytes + 1024;
  static_assert(kSmemBytesV1 <= 227 * 1024);
};

// Version 1's dQ accumulator: per (b, h, 64-query tile) a block of 64·D floats; warpgroup wg's
// (64 queries, 64 columns) part (head dim 128: columns 64·wg…; head dim 64: both warpgroups add
// their partial sums into the one block) in accumulator-fragment order, so that a warp's
// fragment (nt, hh) is 256 contiguous bytes and a warpgroup's part one contiguous 16 KiB run.
__host__ __device__ __forceinline__ int dq_frag_offset(int nt, int hh, int tid128) {
  return ((nt * 2 + hh) * 128 + tid128) * 2;
}

// kVer 0: every wgmma group waited for at once, dQ by float2 atomics into a linear accumulator.
// kVer 1: dSᵀ stored before dV/dK are issued, dV, dK and dQ run back to back (one wait), dQ staged
// in shared memory and added by one bulk reduce-add (cp.reduce.async.bulk) per warpgroup.
template <class V, int kVer>
__global__ void __launch_bounds__(256, 1) bwd_kernel(const __grid_constant__ Params p, size_t dq_acc_offset) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = Cfg<V>;
  using Element = typename C::Element;
  using Mask = typename C::Mask;
  using QL = typename C::QL;
  using KL = typename C::KL;
  using SL = typename C::SL;
  using MmaS = prim::sm90::Wgmma<C::kDType, 64>;     // Sᵀ, dPᵀ: (64 keys, 64 queries)
  using MmaKV = prim::sm90::Wgmma<C::kDType, C::kD>;  // dV, dK: (64 keys, D)
  using MmaQ = WgmmaTT64<C::kDType>;                  // dQ: (64 queries, 64 columns)
  constexpr int kD = C::kD, kBM = C::kBlockM, kBN = C::kBlockN;
  constexpr uint32_t kSbo = 1024;  // 8 rows × 128 bytes between core-matrix groups
  constexpr float kLog2e = 1.4426950408889634f;
  namespace w = prim::sm90;

  const int b = blockIdx.z, hkv = blockIdx.y;
  const SeqInfo si = seq_info(p, b);
  const int sq = si.seqlen_q, sk = si.seqlen_k;
  const int n0 = blockIdx.x * kBN;
  if (n0 >= sk) return;  // past this sequence's keys
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int wg = warp >> 2;            // consumer warpgroup: keys 64·wg … of the tile
  const int wrow = (warp & 3) * 16;    // this warp's first row of every m64 accumulator
  const int group = p.group();
  const int64_t row_base = p.is_varlen() ? si.q_start : int64_t(b) * p.seqlen_q;

  extern __shared__ __align__(128) char smem_proto[];
  const uint32_t raw = static_cast<uint32_t>(__cvta_generic_to_shared(smem_proto));
  const uint32_t base = (raw + 1023u) & ~1023u;
  char* gen = smem_proto + (base - raw);
  const uint32_t sK = base + C::kOffK, sV = base + C::kOffV, sDS = base + C::kOffDS;
  auto sQ = [&](int st) { return base + C::kOffQ + uint32_t(st * QL::kBytes); };
  auto sDO = [&](int st) { return base + C::kOffDO + uint32_t(st * QL::kBytes); };
  float* s_lse = reinterpret_cast<float*>(gen + C::kOffLse);    // (2, 64)
  float* s_dsum = reinterpret_cast<float*>(gen + C::kOffDsum);  // (2, 64)

  // K, V (128 keys, D), once; keys past the sequence or seen by no query are zero-filled.
  const Element* k_ptr = static_cast<const Element*>(p.k) + b * p.k_batch_stride +
                         (si.k_start + n0) * p.k_row_stride + int64_t(hkv) * p.k_head_stride;
  const Element* v_ptr = static_cast<const Element*>(p.v) + b * p.v_batch_stride +
                         (si.k_start + n0) * p.v_row_stride + int64_t(hkv) * p.v_head_stride;
  auto key_ok = [&](int r) { return sq > 0 && prim::key_live<Mask>(0, sq - 1, n0 + r, sq, sk, p.mask); };
  prim::load_tile_async_if<KL, 256>(sK, k_ptr, p.k_row_stride, key_ok, tid);
  prim::load_tile_async_if<KL, 256>(sV, v_ptr, p.v_row_stride, key_ok, tid);
  prim::cp_async_commit();

  // The (query head, query tile) loop, empty tiles skipped.
  const int m_blocks = (sq + kBM - 1) / kBM;
  auto tile_class = [&](int mb) {
    return prim::classify_tile<Mask>(mb * kBM, kBM, n0, kBN, sq, sk, p.mask);
  };
  auto seek = [&](int& hi, int& mb) {
    while (hi < group) {
      while (mb < m_blocks && tile_class(mb) == TileClass::kEmpty) ++mb;
      if (mb < m_blocks) return true;
      mb = 0;
      ++hi;
    }
    return false;
  };
  // Q, dO (64 queries, D) of (hi, mb) into stage st, zero-filled past the sequence; LSE and D.
  auto load_q = [&](int hi, int mb, int st) {
    const int h = hkv * group + hi, m0 = mb * kBM;
    const Element* q = static_cast<const Element*>(p.q) + b * p.q_batch_stride +
                       (si.q_start + m0) * p.q_row_stride + int64_t(h) * p.q_head_stride;
    const Element* d_o = static_cast<const Element*>(p.d_o) + b * p.do_batch_stride +
                         (si.q_start + m0) * p.do_row_stride + int64_t(h) * p.do_head_stride;
    prim::load_tile_async<QL, 256>(sQ(st), q, p.q_row_stride, sq - m0, tid);
    prim::load_tile_async<QL, 256>(sDO(st), d_o, p.do_row_stride, sq - m0, tid);
    if (tid < kBM) {
      const bool ok = m0 + tid < sq;
      const int64_t row = ok ? m0 + tid : 0;
      const float* lse = p.lse + b * p.lse_batch_stride + int64_t(h) * p.lse_head_stride + si.q_start;
      const float* dsum = static_cast<const float*>(p.workspace) + int64_t(h) * p.total_q + row_base;
      bwd_detail::cp_async_4(static_cast<uint32_t>(__cvta_generic_to_shared(s_lse + st * kBM + tid)), lse + row, ok);
      bwd_detail::cp_async_4(static_cast<uint32_t>(__cvta_generic_to_shared(s_dsum + st * kBM + tid)), dsum + row, ok);
    }
  };

  float dv[kD / 8][4], dk[kD / 8][4];  // (64 keys, D) of this warpgroup, fp32
#pragma unroll
  for (int nt = 0; nt < kD / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dv[nt][e] = 0.f, dk[nt][e] = 0.f;
  float* dq_acc = reinterpret_cast<float*>(static_cast<char*>(p.workspace) + dq_acc_offset);
  const bool bulk_issuer = (tid & 127) == 0;  // kVer 1: the thread that issues its warpgroup's reduce-add
  const int64_t m_tiles = (p.seqlen_q + kBM - 1) / kBM;

  int hi = 0, mb = 0, st = 0;
  bool have = seek(hi, mb);
  if (have) load_q(hi, mb, 0);
  prim::cp_async_commit();
  while (have) {
    const int h = hkv * group + hi, m0 = mb * kBM;
    const TileClass cls = tile_class(mb);
    prim::cp_async_wait<0>();
    if constexpr (kVer == 1) {  // the dQ buffer this step writes was last read by the reduce-add of step − 2
      if (bulk_issuer) asm volatile("cp.async.bulk.wait_group.read 1;\n" ::: "memory");
    }
    w::fence_proxy_async();
    __syncthreads();  // [A] this tile (and K, V) in shared memory; the previous step is done
    int nhi = hi, nmb = mb + 1;
    const bool nhave = seek(nhi, nmb);
    if (nhave) load_q(nhi, nmb, st ^ 1);
    prim::cp_async_commit();

    // ---- Sᵀ = K_w·Qᵀ, dPᵀ = V_w·dOᵀ: (64 keys, 64 queries), K-major operands ----------------------
    float s[8][4], dp[8][4];
    w::fence();
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks) {
      const uint32_t koff = (ks / 4) * KL::kSlabBytes + wg * 64 * 128 + (ks % 4) * 32;
      const uint32_t qoff = (ks / 4) * QL::kSlabBytes + (ks % 4) * 32;
      const uint64_t dK = w::desc_sw128(sK + koff, 16, kSbo), dQ = w::desc_sw128(sQ(st) + qoff, 16, kSbo);
      const uint64_t dV = w::desc_sw128(sV + koff, 16, kSbo), dO = w::desc_sw128(sDO(st) + qoff, 16, kSbo);
      if (ks == 0) {
        MmaS::template ss<false>(s, dK, dQ);
        MmaS::template ss<false>(dp, dV, dO);
      } else {
        MmaS::template ss<true>(s, dK, dQ);
        MmaS::template ss<true>(dp, dV, dO);
      }
    }
    w::commit();
    w::wait<0>();

    // ---- Pᵀ = exp2(Sᵀ·scale·log2e − LSE·log2e), dSᵀ = Pᵀ ∘ (dPᵀ − D); masked: selected to 0 --------
    // Element (nt, e): key row wg·64 + wrow + g + 8·(e / 2), query column 8·nt + 2t + e % 2.
    const bool need_mask = cls != TileClass::kFull || m0 + kBM > sq || n0 + kBN > sk;
    const float* lse_s = s_lse + st * kBM;
    const float* dsum_s = s_dsum + st * kBM;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int kl = wg * 64 + wrow + g + 8 * (e >> 1), ql = nt * 8 + 2 * t + (e & 1);
        const float lse = lse_s[ql];
        const float lse2 = lse == -INFINITY ? INFINITY : lse * kLog2e;  // a row that saw nothing: P = 0
        bool vis = true;
        if (need_mask) {
          const int q = m0 + ql, k = n0 + kl;
          vis = q < sq && k < sk && Mask::visible(q, k, sq, sk, p.mask);
        }
        const float pv = vis ? prim::exp2_approx(s[nt][e] * p.scale_log2 - lse2) : 0.f;
        s[nt][e] = pv;
        dp[nt][e] = pv != 0.f ? pv * (dp[nt][e] - dsum_s[ql]) : 0.f;
      }
    uint32_t pa[4][4], da[4][4];  // Pᵀ, dSᵀ as A fragments, one per 16 queries
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      pa[kk][0] = C::Num::pack2(s[2 * kk][0], s[2 * kk][1]);
      pa[kk][1] = C::Num::pack2(s[2 * kk][2], s[2 * kk][3]);
      pa[kk][2] = C::Num::pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[kk][3] = C::Num::pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
      da[kk][0] = C::Num::pack2(dp[2 * kk][0], dp[2 * kk][1]);
      da[kk][1] = C::Num::pack2(dp[2 * kk][2], dp[2 * kk][3]);
      da[kk][2] = C::Num::pack2(dp[2 * kk + 1][0], dp[2 * kk + 1][1]);
      da[kk][3] = C::Num::pack2(dp[2 * kk + 1][2], dp[2 * kk + 1][3]);
    }

    // ---- dSᵀ → shared (key rows, query columns, 16-bit), for dQ = dS·K --------------------------
    // kVer 1 stores it before dV/dK are issued: da is their A operand, not to be touched in flight.
    auto store_ds = [&] {
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int kl = wg * 64 + wrow + g + 8 * hh;
          asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(sDS + SL::offset(kl, nt * 8 + 2 * t)),
                       "r"(da[nt / 2][(nt % 2) * 2 + hh]));
        }
    };
    if constexpr (kVer == 1) store_ds();

    // ---- dV_w += Pᵀ·dO, dK_w += dSᵀ·Q: B = dO / Q (64 queries = k, D = n), MN-major --------------
    w::fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      MmaKV::rs(dv, pa[kk], w::desc_sw128(sDO(st) + kk * 2048, QL::kSlabBytes, kSbo));
      MmaKV::rs(dk, da[kk], w::desc_sw128(sQ(st) + kk * 2048, QL::kSlabBytes, kSbo));
    }
    w::commit();
    if constexpr (kVer == 0) {
      w::wait<0>();
      store_ds();
    }
    w::fence_proxy_async();
    __syncthreads();  // [B] dSᵀ of both warpgroups complete

    // A = dS (64 queries = m, keys = k) read MN-major from dSᵀ; B = K (keys = k, D = n) MN-major.
    // Head dim 128: warpgroup wg computes columns 64·wg … over all 128 keys; head dim 64: all
    // columns over its own 64 keys (the two partial sums meet in the atomics).
    float dq[8][4];
    w::fence();
    if constexpr (kD == 128) {
#pragma unroll
      for (int kk = 0; kk < kBN / 16; ++kk) {
        const uint64_t a = w::desc_sw128(sDS + kk * 2048, SL::kSlabBytes, kSbo);
        const uint64_t bk = w::desc_sw128(sK + wg * KL::kSlabBytes + kk * 2048, KL::kSlabBytes, kSbo);
        if (kk == 0) MmaQ::template ss<false>(dq, a, bk);
        else MmaQ::template ss<true>(dq, a, bk);
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint32_t off = uint32_t(wg * 64 + kk * 16) * 128;
        const uint64_t a = w::desc_sw128(sDS + off, SL::kSlabBytes, kSbo);
        const uint64_t bk = w::desc_sw128(sK + off, KL::kSlabBytes, kSbo);
        if (kk == 0) MmaQ::template ss<false>(dq, a, bk);
        else MmaQ::template ss<true>(dq, a, bk);
      }
    }
    w::commit();
    w::wait<0>();
    // dQ rows are queries: element (nt, e) is query wrow + g + 8·(e / 2), column c0 + 8·nt + 2t + e % 2.
    const int c0 = kD == 128 ? wg * 64 : 0;
    if constexpr (kVer == 0) {
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int ql = wrow + g + 8 * hh;
        if (m0 + ql >= sq) continue;
        float* dst = dq_acc + ((row_base + m0 + ql) * p.heads_q + h) * int64_t(kD) + c0 + 2 * t;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
          atomicAdd(reinterpret_cast<float2*>(dst + nt * 8), make_float2(dq[nt][2 * hh], dq[nt][2 * hh + 1]));
      }
    } else {
      // Stage (64, 64) of this warpgroup in fragment order, then one bulk reduce-add into the tile's
      // block (rows past the sequence carry dS = 0, so the whole block is added).
      const uint32_t buf = base + C::kOffDq + uint32_t(st * C::kDqBufBytes + wg * (C::kDqBufBytes / 2));
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh)
          asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(buf + 4u * dq_frag_offset(nt, hh, tid & 127)),
                       "f"(dq[nt][2 * hh]), "f"(dq[nt][2 * hh + 1]));
      w::fence_proxy_async();
      asm volatile("bar.sync %0, 128;\n" ::"r"(1 + wg) : "memory");  // this warpgroup's part staged
      if (bulk_issuer) {
        float* dst = dq_acc + ((int64_t(b) * p.heads_q + h) * m_tiles + mb) * int64_t(kBM * kD) + c0 * kBM;
        asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst),
                     "r"(buf), "r"(C::kDqBufBytes / 2)
                     : "memory");
        asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
      }
    }

    hi = nhi, mb = nmb, have = nhave, st ^= 1;
  }
  prim::cp_async_wait<0>();
  if constexpr (kVer == 1) {
    if (bulk_issuer) asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
  }

  // ---- dK = scale · Σ dSᵀ·Q, dV = Σ Pᵀ·dO: rows are keys --------------------------------------------
  Element* dkg = static_cast<Element*>(p.dk) + b * p.dk_batch_stride + (si.k_start + n0) * p.dk_row_stride +
                 int64_t(hkv) * p.dk_head_stride;
  Element* dvg = static_cast<Element*>(p.dv) + b * p.dv_batch_stride + (si.k_start + n0) * p.dv_row_stride +
                 int64_t(hkv) * p.dv_head_stride;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int kl = wg * 64 + wrow + g + 8 * hh;
    if (n0 + kl >= sk) continue;
#pragma unroll
    for (int nt = 0; nt < kD / 8; ++nt) {
      const int col = nt * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(dkg + int64_t(kl) * p.dk_row_stride + col) =
          C::Num::pack2(dk[nt][2 * hh] * p.scale, dk[nt][2 * hh + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dvg + int64_t(kl) * p.dv_row_stride + col) =
          C::Num::pack2(dv[nt][2 * hh], dv[nt][2 * hh + 1]);
    }
  }
#else
  __trap();  // needs sm_90a
#endif
}

// dQ[t, h, :] = scale · acc[t, h, :] from the linear (total_q, Hq, D) accumulator, 8 elements a thread.
template <class V>
__global__ void convert_dq_kernel(const __grid_constant__ Params p, size_t dq_acc_offset) {
  using C = Cfg<V>;
  constexpr int kChunks = C::kD / 8;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.total_q * p.heads_q * kChunks) return;
  const int64_t row = idx / kChunks;  // t · Hq + h
  const int c = int(idx % kChunks);
  const int64_t tq = row / p.heads_q;
  const int h = int(row % p.heads_q);
  const float* acc = reinterpret_cast<const float*>(static_cast<const char*>(p.workspace) + dq_acc_offset) +
                     row * C::kD + c * 8;
  typename C::Element* dq = static_cast<typename C::Element*>(p.dq) +
                            bwd_detail::q_token_offset(p, tq, p.dq_batch_stride, p.dq_row_stride) +
                            int64_t(h) * p.dq_head_stride + c * 8;
  uint32_t out[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) out[i] = C::Num::pack2(acc[2 * i] * p.scale, acc[2 * i + 1] * p.scale);
  *reinterpret_cast<uint4*>(dq) = make_uint4(out[0], out[1], out[2], out[3]);
}

// kVer 1: dQ = scale · acc from the tiled accumulator (dq_frag_offset), a CTA per (query tile, head,
// batch); thread pair index pi → (column half cg, fragment (nt, hh), warpgroup thread) → (row, column).
template <class V>
__global__ void __launch_bounds__(256) convert_dq_tiled_kernel(const __grid_constant__ Params p, size_t dq_acc_offset) {
  using C = Cfg<V>;
  constexpr int kPairs = C::kBlockM * C::kD / 2;
  const int mb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const SeqInfo si = seq_info(p, b);
  const int m0 = mb * C::kBlockM;
  if (m0 >= si.seqlen_q) return;
  const int64_t m_tiles = (p.seqlen_q + C::kBlockM - 1) / C::kBlockM;
  const float* tile = reinterpret_cast<const float*>(static_cast<const char*>(p.workspace) + dq_acc_offset) +
                      ((int64_t(b) * p.heads_q + h) * m_tiles + mb) * int64_t(C::kBlockM * C::kD);
  typename C::Element* dq = static_cast<typename C::Element*>(p.dq) + int64_t(b) * p.dq_batch_stride +
                            si.q_start * p.dq_row_stride + int64_t(h) * p.dq_head_stride;
  for (int pi = threadIdx.x; pi < kPairs; pi += 256) {
    const int cg = pi / 2048, rem = pi % 2048, fh = rem / 128, tt = rem % 128;
    const int lane = tt & 31;
    const int row = (tt >> 5) * 16 + (lane >> 2) + 8 * (fh & 1);
    const int col = cg * 64 + (fh >> 1) * 8 + 2 * (lane & 3);
    if (m0 + row >= si.seqlen_q) continue;
    const float2 a = *reinterpret_cast<const float2*>(tile + 2 * pi);
    *reinterpret_cast<uint32_t*>(dq + int64_t(m0 + row) * p.dq_row_stride + col) =
        C::Num::pack2(a.x * p.scale, a.y * p.scale);
  }
}

// Which version run_bwd launches (the dev driver sets it).
inline int g_version = 1;

// Entry, like flash::run_bwd<V>: zero the accumulator, D = rowsum(dO ∘ O), the main kernel, dQ.
// Uses the workspace of flash_bwd_workspace_bytes(64, 128, p) (its tiled dQ region holds the
// linear accumulator: B·Hq·⌈Sq/64⌉·64·D ≥ total_q·Hq·D).
template <class V>
attnforge_status run_bwd(const Params& p, cudaStream_t stream) {
  using C = Cfg<V>;
  const BwdWorkspaceLayout ws = flash_bwd_workspace_layout(C::kBlockM, C::kBlockN, p);
  if (p.workspace == nullptr || p.workspace_bytes < ws.total_bytes || p.deterministic) return ATTNFORGE_INTERNAL;
  char* wsp = static_cast<char*>(p.workspace);
  if (cudaMemsetAsync(wsp + ws.dq_acc_offset, 0, ws.zero_bytes, stream) != cudaSuccess) return ATTNFORGE_CUDA_ERROR;
  const int64_t rows = p.total_q * p.heads_q;
  if (rows > 0) {
    constexpr int64_t kRows = bwd_detail::kDotRowsPerBlock;
    bwd_detail::flash_bwd_dot_do_o_kernel<V::kDType, C::kD>
        <<<unsigned((rows + kRows - 1) / kRows), bwd_detail::kPrepostThreads, 0, stream>>>(p);
  }
  if (p.seqlen_k > 0 && p.batch > 0) {
    auto kernel = g_version == 1 ? bwd_kernel<V, 1> : bwd_kernel<V, 0>;
    const int smem = g_version == 1 ? C::kSmemBytesV1 : C::kSmemBytesV0;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess)
      return ATTNFORGE_CUDA_ERROR;
    kernel<<<dim3((p.seqlen_k + C::kBlockN - 1) / C::kBlockN, p.heads_kv, p.batch), C::kThreads, smem, stream>>>(
        p, ws.dq_acc_offset);
  }
  if (g_version == 1) {
    const int m_tiles = (p.seqlen_q + C::kBlockM - 1) / C::kBlockM;
    if (m_tiles > 0 && p.batch > 0)
      convert_dq_tiled_kernel<V><<<dim3(m_tiles, p.heads_q, p.batch), 256, 0, stream>>>(p, ws.dq_acc_offset);
  } else if (rows > 0) {
    const int64_t n = rows * (C::kD / 8);
    convert_dq_kernel<V><<<unsigned((n + 255) / 256), 256, 0, stream>>>(p, ws.dq_acc_offset);
  }
  return cudaGetLastError() == cudaSuccess ? ATTNFORGE_OK : ATTNFORGE_CUDA_ERROR;
}

}  // namespace attnforge::flash::sm90proto
