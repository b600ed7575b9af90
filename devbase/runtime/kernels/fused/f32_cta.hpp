// The fused backend for fp32 inputs, on CUDA cores (FFMA): one CTA keeps its whole score block
// S (kBlockM × Sk) in shared memory, takes the exact two-pass softmax (row max, then row sum) and
// forms O = P·V — the same algorithm as the 16-bit kernels, without tensor cores. Written as phases
// over a thread index with every cross-phase value in shared memory, so that the host test
// (tests/host/test_fused_f32.cpp) runs this very code, one thread after another, against the
// fp64 reference; fused/f32.cuh launches it. Host- and device-compilable.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/hd.hpp"
#include "common/params.hpp"
#include "common/variant.hpp"

namespace attnforge::fused {

// Shared-memory plan of a fp32 variant (codegen/limits.py, fused_f32_max_seqlen_k, computes the same
// bytes to size Tile::kBlockN). Rows of Q, dO and the K/V tile are read 16 bytes at a time and padded
// by 4 floats: the 8 threads of one 16-byte load phase, on 8 consecutive K/V rows, start 4 banks apart.
template <int kD, int kBM, int kMaxSk, int kThreads, bool kBackward>
struct F32Plan {
  static_assert(kD % 4 == 0 && kBM % 4 == 0, "rows of whole 16-byte groups; region offsets stay 16-byte aligned");
  static_assert(kThreads % kBM == 0, "the row phases give every row the same number of threads");
  static constexpr int kKeyTile = 32;       // K or V rows per shared-memory tile
  static constexpr int kPitch = kD + 4;      // floats per row of Q, dO, the K/V tile
  static constexpr int kSPitch = kMaxSk + 1;  // floats per score row
  // Forward: [Q (kBM, kPitch)][K/V tile (kKeyTile, kPitch)][S → P (kBM, kSPitch)][O (kBM, kD)][LSE (kBM)]
  //          [row partials (2, kThreads)]
  // Backward: + [dO (kBM, kPitch)] + [dP → dS (kBM, kSPitch)]; O's buffer holds dQ, LSE's holds LSE.
  static constexpr int kOffQ = 0;
  static constexpr int kOffT = kOffQ + kBM * kPitch;
  static constexpr int kOffS = kOffT + kKeyTile * kPitch;
  static constexpr int kOffO = kOffS + kBM * kSPitch;
  static constexpr int kOffRow = kOffO + kBM * kD;
  static constexpr int kOffPart = kOffRow + kBM;
  static constexpr int kOffDO = kOffPart + 2 * kThreads;
  static constexpr int kOffDP = kOffDO + (kBackward ? kBM * kPitch : 0);
  static constexpr int kFloats = kOffDP + (kBackward ? kBM * kSPitch : 0);
  static constexpr int kBytes = kFloats * 4;
};

// Threads of a CTA as the phases see them: on the device run(f) is f(threadIdx.x) and sync() is
// __syncthreads(); the host test runs f for every thread index in turn and needs no sync.
struct HostThreads {
  int count;
  template <class F>
  void run(F&& f) const {
    for (int t = 0; t < count; ++t) f(t);
  }
  void sync() const {}
};

namespace f32_detail {

constexpr float kNegInf = -INFINITY;

// Four floats moved as one 16-byte shared-memory access.
struct alignas(16) F4 {
  float x, y, z, w;
};
ATTNFORGE_HD F4 ld4(const float* at) { return *reinterpret_cast<const F4*>(at); }
ATTNFORGE_HD void st4(float* at, F4 v) { *reinterpret_cast<F4*>(at) = v; }

// One bias element as a float (attnforge_dtype: F32 additive or BOOL visibility; the validator lets
// an fp32 call pass nothing else).
ATTNFORGE_HD float bias_at(const Params& p, int b, int h, int q, int k) {
  const int64_t at = b * p.bias_stride_b + int64_t(h) * p.bias_stride_h + q * p.bias_stride_q + k * p.bias_stride_k;
  if (p.bias_dtype == ATTNFORGE_BOOL) return static_cast<const uint8_t*>(p.bias)[at] != 0 ? 1.f : 0.f;
  return static_cast<const float*>(p.bias)[at];
}

// Rows of one (sequence, head): element d of token row r.
struct Rows {
  const float* base;
  int64_t row_stride;
  ATTNFORGE_HD float at(int64_t r, int d) const { return base[r * row_stride + d]; }
};

// x += v, with an atomic on the device (several CTAs add into one dK/dV row); the host test runs one
// thread at a time.
ATTNFORGE_HD void add_to(float* x, float v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(x, v);
#else
  *x += v;
#endif
}

}  // namespace f32_detail

// One CTA: query rows m0 … m0 + kBM − 1 of head h of sequence b (lengths sq, sk of that sequence).
template <class V>
struct F32Cta {
  using Mask = typename V::Mask;
  static constexpr int kD = V::kHeadDim, kBM = V::TileT::kBlockM, kMaxSk = V::TileT::kBlockN;
  static constexpr int kThreads = 32 * V::TileT::kWarps;
  static constexpr bool kBackward = V::kDirection == Direction::bwd;
  using Plan = F32Plan<kD, kBM, kMaxSk, kThreads, kBackward>;
  static constexpr int kKT = Plan::kKeyTile, kP = Plan::kPitch, kSP = Plan::kSPitch;
  // Row phases (softmax, δ): kChunks threads per row; thread t takes row t / kChunks and the keys
  // c, c + kChunks, … of it (c = t % kChunks), so a warp's threads read consecutive floats.
  static constexpr int kChunks = kThreads / kBM;

  const Params& p;
  int b, h, hkv, m0, sq, sk;
  int64_t q_start, k_start;       // first token row of the sequence (varlen; 0 dense)
  f32_detail::Rows q, k, v, d_o;  // this head's rows (d_o: backward only)
  float* smem;

  ATTNFORGE_HD F32Cta(const Params& params, int b_, int h_, int mb, SeqInfo seq, float* shared)
      : p(params), b(b_), h(h_), hkv(h_ / params.group()), m0(mb * kBM), sq(seq.seqlen_q), sk(seq.seqlen_k),
        q_start(seq.q_start), k_start(seq.k_start), smem(shared) {
    q = {static_cast<const float*>(p.q) + b * p.q_batch_stride + seq.q_start * p.q_row_stride + int64_t(h) * p.q_head_stride,
         p.q_row_stride};
    k = {static_cast<const float*>(p.k) + b * p.k_batch_stride + seq.k_start * p.k_row_stride + int64_t(hkv) * p.k_head_stride,
         p.k_row_stride};
    v = {static_cast<const float*>(p.v) + b * p.v_batch_stride + seq.k_start * p.v_row_stride + int64_t(hkv) * p.v_head_stride,
         p.v_row_stride};
    if constexpr (kBackward)
      d_o = {static_cast<const float*>(p.d_o) + b * p.do_batch_stride + seq.q_start * p.do_row_stride +
                 int64_t(h) * p.do_head_stride,
             p.do_row_stride};
  }

  ATTNFORGE_HD float* sQ() const { return smem + Plan::kOffQ; }    // (kBM, kP)
  ATTNFORGE_HD float* sT() const { return smem + Plan::kOffT; }    // (kKT, kP): a K or V tile
  ATTNFORGE_HD float* sS() const { return smem + Plan::kOffS; }    // (kBM, kSP): S, then P
  ATTNFORGE_HD float* sO() const { return smem + Plan::kOffO; }    // (kBM, kD): O, or dQ (backward)
  ATTNFORGE_HD float* sRow() const { return smem + Plan::kOffRow; }  // (kBM): LSE
  ATTNFORGE_HD float* sPart() const { return smem + Plan::kOffPart; }  // (2, kThreads): per-thread row partials
  ATTNFORGE_HD float* sDO() const { return smem + Plan::kOffDO; }  // (kBM, kP), backward
  ATTNFORGE_HD float* sDP() const { return smem + Plan::kOffDP; }  // (kBM, kSP): dP, then dS (backward)

  // rows (kBM, kP) ← this block's query-side rows of `src`, 0 past the sequence.
  ATTNFORGE_HD void load_rows(int tid, float* dst, const f32_detail::Rows& src) const {
    for (int e = tid; e < kBM * kD; e += kThreads) {
      const int i = e / kD, d = e % kD;
      dst[i * kP + d] = m0 + i < sq ? src.at(m0 + i, d) : 0.f;
    }
  }
  // sO (kBM, kD) ← 0: the accumulator of O = P·V (forward) or dS·K (backward).
  ATTNFORGE_HD void clear_o(int tid) const {
    for (int e = tid; e < kBM * kD; e += kThreads) sO()[e] = 0.f;
  }
  // sT (kKT, kP) ← key rows j0 … of `src`, 0 past the sequence.
  ATTNFORGE_HD void load_tile(int tid, const f32_detail::Rows& src, int j0) const {
    for (int e = tid; e < kKT * kD; e += kThreads) {
      const int j = e / kD, d = e % kD;
      sT()[j * kP + d] = j0 + j < sk ? src.at(j0 + j, d) : 0.f;
    }
  }

  // Σ_d a[d]·b[d] over two (kD,) rows of shared memory, in d order.
  ATTNFORGE_HD static float dot_rows(const float* a, const float* b) {
    float acc = 0.f;
    for (int d = 0; d < kD; d += 4) {
      const f32_detail::F4 x = f32_detail::ld4(a + d), y = f32_detail::ld4(b + d);
      acc = fmaf(x.x, y.x, acc), acc = fmaf(x.y, y.y, acc), acc = fmaf(x.z, y.z, acc), acc = fmaf(x.w, y.w, acc);
    }
    return acc;
  }

  // S[i][j0 + j] = Q_i·K_jᵀ·scale (+ bias), or −∞ where (i, j) is masked (no dot is formed there, so
  // garbage in masked K never reaches S); keys past sk are not stored.
  ATTNFORGE_HD void scores(int tid, int j0) const {
    for (int e = tid; e < kBM * kKT; e += kThreads) {
      const int i = e / kKT, j = e % kKT, qi = m0 + i, kj = j0 + j;
      if (kj >= sk) continue;
      float s = f32_detail::kNegInf;
      if (qi < sq && Mask::visible(qi, kj, sq, sk, p.mask)) {
        s = dot_rows(sQ() + i * kP, sT() + j * kP) * p.scale;
        if constexpr (Mask::kHasTensor) {
          const float bv = f32_detail::bias_at(p, b, h, qi, kj);
          if (p.bias_dtype == ATTNFORGE_BOOL) s = bv != 0.f ? s : f32_detail::kNegInf;
          else s += bv;
        }
      }
      sS()[i * kSP + kj] = s;
    }
  }

  // The forward's exact softmax over whole rows, in three row phases (barriers between): m = max S,
  // then P̃ = exp(S − m) and l = Σ P̃, then P = P̃ / l and LSE = m + log l (nothing is rescaled: the
  // whole row is here). A row that sees no key gets P = 0, LSE = −∞.
  ATTNFORGE_HD float row_sum(int i, int half) const {  // Σ over the row's chunk partials, half 0 or 1
    float x = 0.f;
    for (int c = 0; c < kChunks; ++c) x += sPart()[half * kThreads + i * kChunks + c];
    return x;
  }
  ATTNFORGE_HD float row_max(int i) const {
    float mx = f32_detail::kNegInf;
    for (int c = 0; c < kChunks; ++c) mx = fmaxf(mx, sPart()[i * kChunks + c]);
    return mx;
  }
  ATTNFORGE_HD void softmax_max(int tid) const {
    const int i = tid / kChunks, c = tid % kChunks;
    const float* s = sS() + i * kSP;
    float mx = f32_detail::kNegInf;
    for (int j = c; j < sk; j += kChunks) mx = fmaxf(mx, s[j]);
    sPart()[tid] = mx;
  }
  ATTNFORGE_HD void softmax_exp(int tid) const {
    const int i = tid / kChunks, c = tid % kChunks;
    const float mx = row_max(i);
    float* s = sS() + i * kSP;
    float l = 0.f;
    for (int j = c; j < sk; j += kChunks) {
      s[j] = mx == f32_detail::kNegInf ? 0.f : expf(s[j] - mx);
      l += s[j];
    }
    sPart()[kThreads + tid] = l;
  }
  ATTNFORGE_HD void softmax_normalize(int tid) const {
    const int i = tid / kChunks, c = tid % kChunks;
    const float mx = row_max(i), l = row_sum(i, 1);
    if (c == 0) sRow()[i] = mx == f32_detail::kNegInf ? f32_detail::kNegInf : mx + logf(l);
    if (mx == f32_detail::kNegInf) return;
    const float inv = 1.f / l;
    float* s = sS() + i * kSP;
    for (int j = c; j < sk; j += kChunks) s[j] *= inv;
  }

  // sO[i][d] += Σ_j P[i][j0 + j]·V[j][d] over this tile, a thread per 4 consecutive columns of a row;
  // P = 0 terms are skipped (0·NaN from a masked V row would otherwise reach O).
  ATTNFORGE_HD void accumulate_pv(int tid, int j0, const float* p_rows) const {
    const int n = sk - j0 < kKT ? sk - j0 : kKT;
    for (int e = tid; e < kBM * kD / 4; e += kThreads) {
      const int i = e / (kD / 4), d = e % (kD / 4) * 4;
      f32_detail::F4 acc = f32_detail::ld4(sO() + i * kD + d);
      for (int j = 0; j < n; ++j) {
        const float pv = p_rows[i * kSP + j0 + j];
        if (pv == 0.f) continue;
        const f32_detail::F4 x = f32_detail::ld4(sT() + j * kP + d);
        acc.x = fmaf(pv, x.x, acc.x), acc.y = fmaf(pv, x.y, acc.y), acc.z = fmaf(pv, x.z, acc.z), acc.w = fmaf(pv, x.w, acc.w);
      }
      f32_detail::st4(sO() + i * kD + d, acc);
    }
  }

  // O, LSE and (dense only) the weights P of the rows inside the sequence.
  ATTNFORGE_HD void store_forward(int tid) const {
    float* o = static_cast<float*>(p.o) + b * p.o_batch_stride + int64_t(h) * p.o_head_stride;
    for (int e = tid; e < kBM * kD; e += kThreads) {
      const int i = e / kD, d = e % kD;
      if (m0 + i < sq) o[(q_start + m0 + i) * p.o_row_stride + d] = sO()[e];
    }
    for (int i = tid; i < kBM; i += kThreads)
      if (m0 + i < sq) p.lse[b * p.lse_batch_stride + int64_t(h) * p.lse_head_stride + q_start + m0 + i] = sRow()[i];
    if (p.weights != nullptr) {  // (B, Hq, Sq, Sk) contiguous; validation refuses weights with varlen
      float* w = static_cast<float*>(p.weights) + (int64_t(b) * p.heads_q + h) * int64_t(p.seqlen_q) * p.seqlen_k;
      for (int e = tid; e < kBM * sk; e += kThreads) {
        const int i = e / sk, j = e % sk;
        if (m0 + i < sq) w[int64_t(m0 + i) * p.seqlen_k + j] = sS()[i * kSP + j];
      }
    }
  }

  // ---- backward -------------------------------------------------------------------------------------
  // sRow ← the forward's LSE of each row (+∞ past the sequence: P = 0 there).
  ATTNFORGE_HD void load_lse(int tid) const {
    for (int i = tid; i < kBM; i += kThreads)
      sRow()[i] = m0 + i < sq ? p.lse[b * p.lse_batch_stride + int64_t(h) * p.lse_head_stride + q_start + m0 + i]
                              : INFINITY;
  }
  // P = exp(S − LSE) from the stored scores; masked (−∞) → 0, also in a row that saw nothing (LSE −∞).
  ATTNFORGE_HD void probs(int tid) const {
    for (int e = tid; e < kBM * sk; e += kThreads) {
      const int i = e / sk, j = e % sk;
      const float s = sS()[i * kSP + j];
      sS()[i * kSP + j] = s == f32_detail::kNegInf ? 0.f : expf(s - sRow()[i]);
    }
  }
  // dP[i][j0 + j] = dO_i·V_jᵀ over this tile where P ≠ 0 (elsewhere dS is 0 whatever dP is).
  ATTNFORGE_HD void grad_probs(int tid, int j0) const {
    for (int e = tid; e < kBM * kKT; e += kThreads) {
      const int i = e / kKT, j = e % kKT;
      if (j0 + j >= sk) continue;
      sDP()[i * kSP + j0 + j] = sS()[i * kSP + j0 + j] != 0.f ? dot_rows(sDO() + i * kP, sT() + j * kP) : 0.f;
    }
  }
  // Two row phases: δ = Σ_j P·dP (the row is whole, so exactly rowsum(dO ∘ O) of the unrounded O),
  // then dS = P ∘ (dP − δ) in place of dP; 0 wherever P is 0 (not 0·NaN from a masked V row).
  ATTNFORGE_HD void delta_part(int tid) const {
    const int i = tid / kChunks, c = tid % kChunks;
    const float* pr = sS() + i * kSP;
    const float* dp = sDP() + i * kSP;
    float delta = 0.f;
    for (int j = c; j < sk; j += kChunks)
      if (pr[j] != 0.f) delta = fmaf(pr[j], dp[j], delta);
    sPart()[tid] = delta;
  }
  ATTNFORGE_HD void grad_scores(int tid) const {
    const int i = tid / kChunks, c = tid % kChunks;
    const float delta = row_sum(i, 0);
    const float* pr = sS() + i * kSP;
    float* dp = sDP() + i * kSP;
    for (int j = c; j < sk; j += kChunks) dp[j] = pr[j] != 0.f ? pr[j] * (dp[j] - delta) : 0.f;
  }
  // dQ = scale · Σ_j dS·K (accumulated in sO by accumulate_pv over the K tiles), rows inside the sequence.
  ATTNFORGE_HD void store_dq(int tid) const {
    float* dq = static_cast<float*>(p.dq) + b * p.dq_batch_stride + int64_t(h) * p.dq_head_stride;
    for (int e = tid; e < kBM * kD; e += kThreads) {
      const int i = e / kD, d = e % kD;
      if (m0 + i < sq) dq[(q_start + m0 + i) * p.dq_row_stride + d] = sO()[e] * p.scale;
    }
  }
  // dK_j += scale · Σ_i dS[i][j]·Q_i and dV_j += Σ_i P[i][j]·dO_i over this block's rows, added to the
  // caller's fp32 dK, dV (zeroed by the launcher) by every query block and every head of the group.
  ATTNFORGE_HD void add_dkdv(int tid) const {
    float* dk = static_cast<float*>(p.dk) + b * p.dk_batch_stride + int64_t(hkv) * p.dk_head_stride;
    float* dv = static_cast<float*>(p.dv) + b * p.dv_batch_stride + int64_t(hkv) * p.dv_head_stride;
    for (int e = tid; e < sk * kD; e += kThreads) {
      const int j = e / kD, d = e % kD;
      float a = 0.f, c = 0.f;
      for (int i = 0; i < kBM; ++i) {
        a = fmaf(sDP()[i * kSP + j], sQ()[i * kP + d], a);
        c = fmaf(sS()[i * kSP + j], sDO()[i * kP + d], c);
      }
      if (a != 0.f) f32_detail::add_to(dk + (k_start + j) * p.dk_row_stride + d, a * p.scale);
      if (c != 0.f) f32_detail::add_to(dv + (k_start + j) * p.dv_row_stride + d, c);
    }
  }
};

// For each 32-key tile of `rows` (K or V): every thread helps load it into sT, then runs phase(t, j0).
// Ends on a barrier, so what the phases wrote is visible to the next step.
template <class V, class Threads, class Phase>
ATTNFORGE_HD void over_key_tiles(const F32Cta<V>& c, const Threads& th, const f32_detail::Rows& rows, Phase&& phase) {
  for (int j0 = 0; j0 < c.sk; j0 += F32Cta<V>::kKT) {
    th.sync();  // the previous tile is consumed
    th.run([&](int t) { c.load_tile(t, rows, j0); });
    th.sync();
    th.run([&](int t) { phase(t, j0); });
  }
  th.sync();
}

// The forward of one CTA: S tile by tile, the exact softmax over the whole row, O = P·V tile by tile.
template <class V, class Threads>
ATTNFORGE_HD void fused_f32_forward(const F32Cta<V>& c, const Threads& th) {
  th.run([&](int t) { c.load_rows(t, c.sQ(), c.q), c.clear_o(t); });
  over_key_tiles(c, th, c.k, [&](int t, int j0) { c.scores(t, j0); });  // S = Q·Kᵀ·scale, masked
  th.run([&](int t) { c.softmax_max(t); });                              // P, LSE
  th.sync();
  th.run([&](int t) { c.softmax_exp(t); });
  th.sync();
  th.run([&](int t) { c.softmax_normalize(t); });
  over_key_tiles(c, th, c.v, [&](int t, int j0) { c.accumulate_pv(t, j0, c.sS()); });  // O = P·V
  th.run([&](int t) { c.store_forward(t); });
}

// The backward of one CTA: P from the stored LSE, dP = dO·Vᵀ, dS, dQ = dS·K, and dK, dV added in.
template <class V, class Threads>
ATTNFORGE_HD void fused_f32_backward(const F32Cta<V>& c, const Threads& th) {
  th.run([&](int t) { c.load_rows(t, c.sQ(), c.q), c.load_rows(t, c.sDO(), c.d_o), c.clear_o(t), c.load_lse(t); });
  over_key_tiles(c, th, c.k, [&](int t, int j0) { c.scores(t, j0); });
  th.run([&](int t) { c.probs(t); });
  over_key_tiles(c, th, c.v, [&](int t, int j0) { c.grad_probs(t, j0); });  // dP = dO·Vᵀ
  th.run([&](int t) { c.delta_part(t); });                                    // δ, dS
  th.sync();
  th.run([&](int t) { c.grad_scores(t); });
  over_key_tiles(c, th, c.k, [&](int t, int j0) { c.accumulate_pv(t, j0, c.sDP()); });  // dQ = dS·K
  th.run([&](int t) { c.store_dq(t); });
  th.run([&](int t) { c.add_dkdv(t); });
}

}  // namespace attnforge::fused
