// The fused fp32 kernels' CTA code (fused/f32_cta.hpp) run on the host, one thread index after
// another, over the whole grid, against the fp64 reference under DESIGN.md's numerics rule (the
// baseline is the plain fp32 implementation): masks, bias, varlen with empty sequences, GQA, Sq ≠ Sk,
// fully masked rows, weights, NaN in masked K/V. Params come from the runtime's own validate_args.
// What this cannot see (shared-memory size, barriers, atomics) the GPU tests check on a device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "attention_case.hpp"
#include "attnforge/reference.hpp"
#include "fused/f32_cta.hpp"
#include "masks.hpp"
#include "validate.hpp"
#include "tensor_view.hpp"

namespace {

using attnforge::test::contiguous_tensor;

using namespace attnforge;
namespace gm = attnforge::generated::mask;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

template <Direction Dir, class Mask, int D, int BM, int MaxSk, int W>
using F32V = Variant<Backend::fused, Dir, DType::f32, D, Mask, Tile<BM, MaxSk, W, 0>>;

// One problem: shapes, mask, host data as floats (the kernel's inputs) and doubles (the reference's).
struct Problem {
  int B = 1, Sq = 1, Sk = 1, Hq = 1, Hkv = 1, D = 32;
  std::string mask = "none";
  int64_t scalars[4] = {-1, -1, -1, -1};
  std::vector<int32_t> cu_q, cu_k;  // varlen when set (B + 1 entries)
  bool bias = false, bias_bool = false, weights = false;
  std::vector<int> nan_keys;  // key rows (token index) whose K and V are NaN: must be masked out

  bool varlen() const { return !cu_q.empty(); }
  int64_t rows_q() const { return varlen() ? cu_q.back() : int64_t(B) * Sq; }
  int64_t rows_k() const { return varlen() ? cu_k.back() : int64_t(B) * Sk; }
};

struct Tensors {
  std::vector<float> q, k, v, o, lse, d_o, dq, dk, dv, bias, w;
  std::vector<uint8_t> bias_bool;  // the BOOL bias as the kernel reads it (1 byte per element)
};

std::vector<float> normals(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> x(n);
  for (float& f : x) f = dist(rng);
  return x;
}

// The Params the runtime would hand the kernel (validate_args on host pointers).
Params params_of(const Problem& pr, Tensors& t, Direction dir) {
  attnforge_args a;
  attnforge_args_init(&a);
  const int64_t rq = pr.rows_q(), rk = pr.rows_k();
  if (pr.varlen()) {
    a.q = contiguous_tensor(t.q.data(), ATTNFORGE_F32, {rq, pr.Hq, pr.D});
    a.k = contiguous_tensor(t.k.data(), ATTNFORGE_F32, {rk, pr.Hkv, pr.D});
    a.v = contiguous_tensor(t.v.data(), ATTNFORGE_F32, {rk, pr.Hkv, pr.D});
    a.o = contiguous_tensor(t.o.data(), ATTNFORGE_F32, {rq, pr.Hq, pr.D});
    a.lse = contiguous_tensor(t.lse.data(), ATTNFORGE_F32, {pr.Hq, rq});
    a.cu_seqlens_q = pr.cu_q.data(), a.cu_seqlens_k = pr.cu_k.data();
    a.batch_varlen = pr.B, a.max_seqlen_q = pr.Sq, a.max_seqlen_k = pr.Sk;
  } else {
    a.q = contiguous_tensor(t.q.data(), ATTNFORGE_F32, {pr.B, pr.Sq, pr.Hq, pr.D});
    a.k = contiguous_tensor(t.k.data(), ATTNFORGE_F32, {pr.B, pr.Sk, pr.Hkv, pr.D});
    a.v = contiguous_tensor(t.v.data(), ATTNFORGE_F32, {pr.B, pr.Sk, pr.Hkv, pr.D});
    a.o = contiguous_tensor(t.o.data(), ATTNFORGE_F32, {pr.B, pr.Sq, pr.Hq, pr.D});
    a.lse = contiguous_tensor(t.lse.data(), ATTNFORGE_F32, {pr.B, pr.Hq, pr.Sq});
  }
  if (dir == Direction::bwd) {
    a.d_o = a.o, a.d_o.data = t.d_o.data();
    a.dq = a.q, a.dq.data = t.dq.data();
    a.dk = a.k, a.dk.data = t.dk.data();
    a.dv = a.v, a.dv.data = t.dv.data();
  }
  a.mask.kind = pr.mask.c_str();
  for (int i = 0; i < 4; ++i) a.mask.scalars[i] = pr.scalars[i];
  if (pr.bias)
    a.mask.bias = pr.bias_bool ? contiguous_tensor(t.bias_bool.data(), ATTNFORGE_BOOL, {pr.B, pr.Hq, pr.Sq, pr.Sk})
                               : contiguous_tensor(t.bias.data(), ATTNFORGE_F32, {pr.B, pr.Hq, pr.Sq, pr.Sk});
  if (pr.weights) a.weights = contiguous_tensor(t.w.data(), ATTNFORGE_F32, {pr.B, pr.Hq, pr.Sq, pr.Sk});
  ValidatedCall call;
  std::string error;
  EXPECT_EQ(validate_args(a, dir, call, error), ATTNFORGE_OK) << error;
  return call.params;
}

// Every CTA of the grid (kBlockM-row blocks × Hq × B), its shared memory poisoned with NaN first.
template <class V>
void run_grid(const Params& p, const Problem& pr) {
  using Cta = fused::F32Cta<V>;
  std::vector<float> smem(Cta::Plan::kFloats);
  for (int b = 0; b < pr.B; ++b) {
    const SeqInfo seq = pr.varlen() ? SeqInfo{pr.cu_q[b], pr.cu_k[b], pr.cu_q[b + 1] - pr.cu_q[b], pr.cu_k[b + 1] - pr.cu_k[b]}
                                    : SeqInfo{0, 0, pr.Sq, pr.Sk};
    for (int h = 0; h < pr.Hq; ++h)
      for (int mb = 0; mb * Cta::kBM < seq.seqlen_q; ++mb) {
        std::fill(smem.begin(), smem.end(), kNaN);
        const Cta cta(p, b, h, mb, seq, smem.data());
        if constexpr (Cta::kBackward) fused::fused_f32_backward(cta, fused::HostThreads{Cta::kThreads});
        else fused::fused_f32_forward(cta, fused::HostThreads{Cta::kThreads});
      }
  }
}

std::vector<double> widen(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// Forward and backward of variant pair (Fwd, Bwd) on pr; every output against the reference.
template <class Fwd, class Bwd>
void check(const Problem& pr, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "mask " << pr.mask << " B" << pr.B << " Sq" << pr.Sq << " Sk" << pr.Sk << " Hq"
                                    << pr.Hq << " Hkv" << pr.Hkv << " D" << pr.D << (pr.varlen() ? " varlen" : "")
                                    << (pr.bias ? (pr.bias_bool ? " bool bias" : " bias") : ""));
  const int64_t nq = pr.rows_q() * pr.Hq * pr.D, nk = pr.rows_k() * pr.Hkv * pr.D;
  Tensors t;
  t.q = normals(nq, seed * 8 + 1), t.k = normals(nk, seed * 8 + 2), t.v = normals(nk, seed * 8 + 3);
  t.d_o = normals(nq, seed * 8 + 4);
  t.o.assign(nq, kNaN), t.lse.assign(pr.rows_q() * pr.Hq, kNaN);
  t.dq.assign(nq, kNaN), t.dk.assign(nk, 0.f), t.dv.assign(nk, 0.f);  // the launcher zeroes dK, dV
  const int64_t nbias = int64_t(pr.B) * pr.Hq * pr.Sq * pr.Sk;
  if (pr.bias) {
    t.bias = normals(nbias, seed * 8 + 5);
    if (pr.bias_bool) {
      for (float& x : t.bias) x = x > -0.8f ? 1.f : 0.f;  // ~80 % visible
      t.bias_bool.assign(t.bias.begin(), t.bias.end());
    }
  }
  if (pr.weights) t.w.assign(nbias, kNaN);
  // The reference sees the finite inputs; the kernel also gets NaN in K/V rows the mask hides.
  std::vector<double> q = widen(t.q), k = widen(t.k), v = widen(t.v), d_o = widen(t.d_o);
  for (int row : pr.nan_keys)
    for (int i = 0; i < pr.Hkv * pr.D; ++i) t.k[row * pr.Hkv * pr.D + i] = t.v[row * pr.Hkv * pr.D + i] = kNaN;

  run_grid<Fwd>(params_of(pr, t, Direction::fwd), pr);

  ReferenceProblem rp;
  rp.batch = pr.B, rp.seqlen_q = pr.Sq, rp.seqlen_k = pr.Sk, rp.heads_q = pr.Hq, rp.heads_kv = pr.Hkv, rp.head_dim = pr.D;
  if (pr.varlen()) rp.cu_seqlens_q = pr.cu_q.data(), rp.cu_seqlens_k = pr.cu_k.data();
  rp.mask = pr.mask;
  for (int i = 0; i < 4; ++i) rp.scalars[i] = pr.scalars[i];
  std::vector<double> bias_d = widen(t.bias);
  if (pr.bias) rp.bias = HostTensor::contiguous(bias_d.data(), {pr.B, pr.Hq, pr.Sq, pr.Sk}), rp.bias_is_bool = pr.bias_bool;
  auto view_q = [&](std::vector<double>& x) {
    return pr.varlen() ? HostTensor::contiguous(x.data(), {pr.rows_q(), pr.Hq, pr.D})
                       : HostTensor::contiguous(x.data(), {pr.B, pr.Sq, pr.Hq, pr.D});
  };
  auto view_k = [&](std::vector<double>& x) {
    return pr.varlen() ? HostTensor::contiguous(x.data(), {pr.rows_k(), pr.Hkv, pr.D})
                       : HostTensor::contiguous(x.data(), {pr.B, pr.Sk, pr.Hkv, pr.D});
  };
  auto view_lse = [&](std::vector<double>& x) {
    return pr.varlen() ? HostTensor::contiguous(x.data(), {pr.Hq, pr.rows_q()})
                       : HostTensor::contiguous(x.data(), {pr.B, pr.Hq, pr.Sq});
  };
  std::vector<double> ref_o(nq), low_o(nq), ref_lse(t.lse.size()), low_lse(t.lse.size()), ref_p, low_p;
  HostTensor hp_ref, hp_low;
  if (pr.weights) {
    ref_p.assign(nbias, 0.0), low_p.assign(nbias, 0.0);
    hp_ref = HostTensor::contiguous(ref_p.data(), {pr.B, pr.Hq, pr.Sq, pr.Sk});
    hp_low = HostTensor::contiguous(low_p.data(), {pr.B, pr.Hq, pr.Sq, pr.Sk});
  }
  reference_forward(rp, view_q(q), view_k(k), view_k(v), view_q(ref_o), view_lse(ref_lse), hp_ref);
  reference_lowp_forward(ATTNFORGE_F32, rp, view_q(q), view_k(k), view_k(v), view_q(low_o), view_lse(low_lse), hp_low);

  std::ostringstream log;
  bool ok = true;
  auto rule = [&](const char* name, const std::vector<float>& out, const std::vector<double>& ref,
                  const std::vector<double>& low, double factor) {
    const test::RuleCheck c = test::numerics_rule(widen(out), ref, low, factor, 1e-5, 24);
    log << name << ": err " << c.err << " bound " << c.bound << (c.ok ? "" : "  FAIL") << "\n";
    ok &= c.ok;
  };
  rule("O", t.o, ref_o, low_o, 2.0);
  rule("LSE", t.lse, ref_lse, low_lse, 2.0);
  if (pr.weights) rule("P", t.w, ref_p, low_p, 2.0);

  run_grid<Bwd>(params_of(pr, t, Direction::bwd), pr);
  std::vector<double> rq(nq), rk(nk), rv(nk), lq(nq), lk(nk), lv(nk);
  reference_backward(rp, view_q(q), view_k(k), view_k(v), view_q(d_o), view_q(rq), view_k(rk), view_k(rv));
  reference_lowp_backward(ATTNFORGE_F32, rp, view_q(q), view_k(k), view_k(v), view_q(d_o), view_q(lq), view_k(lk),
                          view_k(lv));
  rule("dQ", t.dq, rq, lq, 3.0);
  rule("dK", t.dk, rk, lk, 3.0);
  rule("dV", t.dv, rv, lv, 3.0);
  EXPECT_TRUE(ok) << log.str();
}

TEST(FusedF32, DenseMasksGqaAndSqNotSk) {
  Problem pr;
  pr.B = 2, pr.Sq = 37, pr.Sk = 53, pr.Hq = 4, pr.Hkv = 2, pr.D = 64;
  for (const char* m : {"none", "causal"}) {
    pr.mask = m;
    if (pr.mask == "none") check<F32V<Direction::fwd, gm::none, 64, 16, 128, 4>, F32V<Direction::bwd, gm::none, 64, 16, 128, 4>>(pr, 11);
    else check<F32V<Direction::fwd, gm::causal, 64, 16, 128, 4>, F32V<Direction::bwd, gm::causal, 64, 16, 128, 4>>(pr, 12);
  }
}

// Window (5 left, 3 right), bottom-right aligned with Sq 60, Sk 70: query i sees keys i + 5 … i + 13, so
// keys 0 … 4 are seen by no query; their K and V are NaN for the kernel (finite for the reference).
// 70 keys span three 32-key tiles.
TEST(FusedF32, WindowAcrossKeyTilesWithNanInHiddenKeys) {
  Problem pr;
  pr.B = 1, pr.Sq = 60, pr.Sk = 70, pr.Hq = 2, pr.Hkv = 1, pr.D = 32, pr.mask = "window";
  pr.scalars[0] = 5, pr.scalars[1] = 3;
  pr.nan_keys = {0, 1, 2, 3, 4};
  check<F32V<Direction::fwd, gm::window, 32, 16, 128, 4>, F32V<Direction::bwd, gm::window, 32, 16, 128, 4>>(pr, 21);
}

TEST(FusedF32, BiasAdditiveAndBooleanWithWeights) {
  Problem pr;
  pr.B = 2, pr.Sq = 20, pr.Sk = 45, pr.Hq = 2, pr.Hkv = 1, pr.D = 32, pr.mask = "bias", pr.bias = true, pr.weights = true;
  check<F32V<Direction::fwd, gm::bias, 32, 16, 64, 4>, F32V<Direction::bwd, gm::bias, 32, 16, 64, 4>>(pr, 31);
  pr.bias_bool = true;
  check<F32V<Direction::fwd, gm::bias, 32, 16, 64, 4>, F32V<Direction::bwd, gm::bias, 32, 16, 64, 4>>(pr, 32);
}

TEST(FusedF32, VarlenWithEmptySequences) {
  Problem pr;
  pr.B = 4, pr.Hq = 4, pr.Hkv = 2, pr.D = 32, pr.mask = "causal";
  pr.cu_q = {0, 0, 5, 45, 46};   // lengths 0, 5, 40, 1
  pr.cu_k = {0, 3, 3, 50, 51};   // lengths 3, 0, 47, 1
  pr.Sq = 40, pr.Sk = 47;
  check<F32V<Direction::fwd, gm::causal, 32, 16, 64, 4>, F32V<Direction::bwd, gm::causal, 32, 16, 64, 4>>(pr, 41);
}

// Sq > Sk with a bottom-right causal mask: the first Sq − Sk rows see no key (O = 0, LSE = −∞, dQ = 0).
TEST(FusedF32, FullyMaskedRows) {
  Problem pr;
  pr.B = 1, pr.Sq = 30, pr.Sk = 9, pr.Hq = 1, pr.Hkv = 1, pr.D = 32, pr.mask = "causal";
  check<F32V<Direction::fwd, gm::causal, 32, 16, 64, 4>, F32V<Direction::bwd, gm::causal, 32, 16, 64, 4>>(pr, 51);
}

}  // namespace
