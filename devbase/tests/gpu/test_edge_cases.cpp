// Edge cases, one test each, run on every compiled backend: fully masked rows, NaN / 1e10 in masked
// key/value rows, large logits, rows that see 1–5 keys (backward), fp16 inputs near its maximum, batch invariance (batches of 12, 17,
// 128), CUDA-graph capture and replay on a non-default stream, tensors over 2³¹ elements, and more
// sequences or heads than a grid dimension holds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <utility>

#include "attnforge/reference.hpp"
#include "attention_case.hpp"
#include "reliability_util.hpp"
#include "variant_key.hpp"

namespace {

using namespace attnforge;
using reliability::View;
using test::DeviceBuffer;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- a dense problem with contiguous tensors and host-chosen values -------------------------------
struct Problem {
  attnforge_dtype dtype = ATTNFORGE_BF16;
  int B = 1, Sq = 16, Sk = 16, Hq = 2, Hkv = 2, D = 64;
  std::string mask = "none";
  int64_t scalars[4] = {-1, -1, -1, -1};
  float scale = 0.0f;
  std::vector<double> q, k, v, d_o;  // (B, S, H, D) contiguous, values already representable
  std::vector<double> bias;          // (B, Hq, Sq, Sk) contiguous; empty = none
  attnforge_dtype bias_dtype = ATTNFORGE_BOOL;
  std::vector<int32_t> cu_q, cu_k;   // varlen (then q is (total_q, Hq, D) etc.)

  bool varlen() const { return !cu_q.empty(); }
  int64_t rows_q() const { return varlen() ? cu_q.back() : int64_t(B) * Sq; }
  int64_t rows_k() const { return varlen() ? cu_k.back() : int64_t(B) * Sk; }
  View qv() const {
    return varlen() ? reliability::contiguous_view({rows_q(), Hq, D}) : reliability::contiguous_view({B, Sq, Hq, D});
  }
  View kv() const {
    return varlen() ? reliability::contiguous_view({rows_k(), Hkv, D}) : reliability::contiguous_view({B, Sk, Hkv, D});
  }
  View lsev() const {
    return varlen() ? reliability::contiguous_view({Hq, rows_q()}) : reliability::contiguous_view({B, Hq, Sq});
  }
  // Random normals everywhere (rounded to the dtype), times `amp`.
  void randomize(uint64_t seed, double amp = 1.0) {
    auto gen = [&](int64_t n, uint64_t s) {
      auto x = test::random_normal(size_t(n), s, ATTNFORGE_F32);
      for (double& e : x) e = round_to_dtype(dtype, e * amp);
      return x;
    };
    q = gen(qv().numel(), seed * 4 + 1), k = gen(kv().numel(), seed * 4 + 2), v = gen(kv().numel(), seed * 4 + 3);
    d_o = test::random_normal(size_t(qv().numel()), seed * 4 + 4, dtype);
  }
};

struct Result {
  attnforge_status fwd = ATTNFORGE_OK, bwd = ATTNFORGE_OK;
  std::string error;
  std::vector<double> o, lse, dq, dk, dv;
};

struct Target {
  Backend backend;
  std::string fwd, bwd;  // variant names; empty = let the backend choose
};

// Forward (with LSE) then backward, eagerly on `stream`.
Result run(const Problem& pr, const Target& t, bool backward = true, cudaStream_t stream = nullptr) {
  Result r;
  const attnforge_dtype dt = pr.dtype;
  const size_t es = test::dtype_size(dt);
  DeviceBuffer q = test::upload(pr.q, dt), k = test::upload(pr.k, dt), v = test::upload(pr.v, dt);
  DeviceBuffer d_o = test::upload(pr.d_o, dt);
  DeviceBuffer o(size_t(pr.qv().numel()) * es), lse(size_t(pr.lsev().numel()) * 4);
  DeviceBuffer dq(size_t(pr.qv().numel()) * es), dk(size_t(pr.kv().numel()) * es), dv(size_t(pr.kv().numel()) * es);
  DeviceBuffer bias, cu_q, cu_k;
  if (!pr.bias.empty()) bias = test::upload(pr.bias, pr.bias_dtype);
  if (pr.varlen()) cu_q = test::upload_int32(pr.cu_q), cu_k = test::upload_int32(pr.cu_k);
  attnforge_args a;
  attnforge_args_init(&a);
  a.q = reliability::tensor_of(q, dt, pr.qv());
  a.k = reliability::tensor_of(k, dt, pr.kv());
  a.v = reliability::tensor_of(v, dt, pr.kv());
  a.o = reliability::tensor_of(o, dt, pr.qv());
  a.lse = reliability::tensor_of(lse, ATTNFORGE_F32, pr.lsev());
  a.scale = pr.scale;
  a.mask.kind = pr.mask.c_str();
  for (int i = 0; i < 4; ++i) a.mask.scalars[i] = pr.scalars[i];
  if (!pr.bias.empty())
    a.mask.bias = reliability::tensor_of(bias, pr.bias_dtype, reliability::contiguous_view({pr.B, pr.Hq, pr.Sq, pr.Sk}));
  if (pr.varlen()) {
    a.cu_seqlens_q = cu_q.as<const int32_t>(), a.cu_seqlens_k = cu_k.as<const int32_t>();
    a.batch_varlen = pr.B, a.max_seqlen_q = pr.Sq, a.max_seqlen_k = pr.Sk;
  }
  a.backend = attnforge_backend(int(t.backend));
  a.variant = t.fwd.empty() ? nullptr : t.fwd.c_str();
  if ((r.fwd = attnforge_forward(&a, stream)) != ATTNFORGE_OK) return r.error = attnforge_last_error(), r;
  ATTNFORGE_TEST_CUDA(cudaStreamSynchronize(stream));
  r.o = test::download(o, size_t(pr.qv().numel()), dt);
  r.lse = test::download(lse, size_t(pr.lsev().numel()), ATTNFORGE_F32);
  if (!backward) return r;
  a.d_o = reliability::tensor_of(d_o, dt, pr.qv());
  a.dq = reliability::tensor_of(dq, dt, pr.qv());
  a.dk = reliability::tensor_of(dk, dt, pr.kv());
  a.dv = reliability::tensor_of(dv, dt, pr.kv());
  a.variant = t.bwd.empty() ? nullptr : t.bwd.c_str();
  if ((r.bwd = attnforge_backward(&a, stream)) != ATTNFORGE_OK) return r.error = attnforge_last_error(), r;
  ATTNFORGE_TEST_CUDA(cudaStreamSynchronize(stream));
  r.dq = test::download(dq, size_t(pr.qv().numel()), dt);
  r.dk = test::download(dk, size_t(pr.kv().numel()), dt);
  r.dv = test::download(dv, size_t(pr.kv().numel()), dt);
  return r;
}

// fp64 reference and the low-precision baseline of the same problem.
struct Reference {
  std::vector<double> o, lse, dq, dk, dv;
};
Reference reference(const Problem& pr, bool lowp) {
  Reference r;
  std::vector<double> q = pr.q, k = pr.k, v = pr.v, d_o = pr.d_o, bias = pr.bias;
  ReferenceProblem rp;
  rp.batch = pr.B, rp.seqlen_q = pr.Sq, rp.seqlen_k = pr.Sk, rp.heads_q = pr.Hq, rp.heads_kv = pr.Hkv;
  rp.head_dim = pr.D, rp.scale = pr.scale, rp.mask = pr.mask;
  for (int i = 0; i < 4; ++i) rp.scalars[i] = pr.scalars[i];
  if (pr.varlen()) rp.cu_seqlens_q = pr.cu_q.data(), rp.cu_seqlens_k = pr.cu_k.data();
  if (!bias.empty()) {
    rp.bias = HostTensor::contiguous(bias.data(), {pr.B, pr.Hq, pr.Sq, pr.Sk});
    rp.bias_is_bool = pr.bias_dtype == ATTNFORGE_BOOL;
  }
  auto host = [](std::vector<double>& x, const View& v) {
    HostTensor t;
    t.data = x.data(), t.rank = v.rank;
    for (int i = 0; i < v.rank; ++i) t.sizes[i] = v.sizes[i], t.strides[i] = v.strides[i];
    return t;
  };
  const View qv = pr.qv(), kv = pr.kv(), lv = pr.lsev();
  r.o.assign(size_t(qv.numel()), 0), r.lse.assign(size_t(lv.numel()), 0);
  r.dq.assign(size_t(qv.numel()), 0), r.dk.assign(size_t(kv.numel()), 0), r.dv.assign(size_t(kv.numel()), 0);
  if (lowp) {
    reference_lowp_forward(pr.dtype, rp, host(q, qv), host(k, kv), host(v, kv), host(r.o, qv), host(r.lse, lv));
    reference_lowp_backward(pr.dtype, rp, host(q, qv), host(k, kv), host(v, kv), host(d_o, qv), host(r.dq, qv),
                            host(r.dk, kv), host(r.dv, kv));
  } else {
    reference_forward(rp, host(q, qv), host(k, kv), host(v, kv), host(r.o, qv), host(r.lse, lv));
    reference_backward(rp, host(q, qv), host(k, kv), host(v, kv), host(d_o, qv), host(r.dq, qv), host(r.dk, kv),
                       host(r.dv, kv));
  }
  return r;
}

// The numerics rule on every output; `log` gets one line per tensor.
bool passes_rule(const Problem& pr, const Result& g, std::ostringstream& log, bool backward = true) {
  const Reference ref = reference(pr, false), low = reference(pr, true);
  bool ok = reliability::numerics_rule(log, "O", pr.qv(), pr.dtype, g.o, ref.o, low.o, 2.0);
  ok &= reliability::numerics_rule(log, "LSE", pr.lsev(), ATTNFORGE_F32, g.lse, ref.lse, low.lse, 2.0);
  if (!backward) return ok;
  ok &= reliability::numerics_rule(log, "dQ", pr.qv(), pr.dtype, g.dq, ref.dq, low.dq, 3.0);
  ok &= reliability::numerics_rule(log, "dK", pr.kv(), pr.dtype, g.dk, ref.dk, low.dk, 3.0);
  ok &= reliability::numerics_rule(log, "dV", pr.kv(), pr.dtype, g.dv, ref.dv, low.dv, 3.0);
  return ok;
}

// The rule for the gradients of a problem with huge logits. Every backend forms dS = P ∘ (dP − D)
// with D = rowsum(dO ∘ O) (the flash identity) and dP = dO·Vᵀ, two fp32 sums in different orders;
// for a one-hot row they agree only to fp32 summation error, |dP − D| ≤ 2·D·2⁻²⁴·Σ_d|dO_d|·|O_d|
// (the classic forward-error bound), which dQ = scale·dS·K and dK = scale·dSᵀ·Q amplify by
// scale·|K| and Sq·scale·|Q|. The plain baseline takes D = Σ_j P·dP from the same dP, which cancels
// exactly, so its error does not cover this; the bound is added to the rule's absolute slack.
// (Device run of 17:23: all three backends gave dQ 1.6e-4 where fp64 gives 0, the baseline 7.8e-7.)
bool passes_rule_large_logits(const Problem& pr, const Result& g, std::ostringstream& log) {
  const Reference ref = reference(pr, false), low = reference(pr, true);
  bool ok = reliability::numerics_rule(log, "O", pr.qv(), pr.dtype, g.o, ref.o, low.o, 2.0);
  ok &= reliability::numerics_rule(log, "LSE", pr.lsev(), ATTNFORGE_F32, g.lse, ref.lse, low.lse, 2.0);
  double row = 0;  // max_i Σ_d |dO_id|·|O_id|
  for (size_t i = 0; i < pr.d_o.size(); i += size_t(pr.D)) {
    double sum = 0;
    for (int d = 0; d < pr.D; ++d) sum += std::abs(pr.d_o[i + size_t(d)]) * std::abs(ref.o[i + size_t(d)]);
    row = std::max(row, sum);
  }
  auto max_abs = [](const std::vector<double>& x) {
    double m = 0;
    for (double e : x) m = std::max(m, std::abs(e));
    return m;
  };
  const double scale = pr.scale != 0.0f ? double(pr.scale) : 1.0 / std::sqrt(double(pr.D));
  const double dd = 2.0 * pr.D * std::ldexp(1.0, -24) * row;  // bound on |dP − D| of one row
  const double tol_q = scale * max_abs(pr.k) * dd + 1e-5, tol_k = pr.Sq * scale * max_abs(pr.q) * dd + 1e-5;
  log << "  fp32 summation slack: |dP - D| <= " << dd << ", dQ +" << tol_q << ", dK +" << tol_k << "\n";
  ok &= reliability::numerics_rule(log, "dQ", pr.qv(), pr.dtype, g.dq, ref.dq, low.dq, 3.0, tol_q);
  ok &= reliability::numerics_rule(log, "dK", pr.kv(), pr.dtype, g.dk, ref.dk, low.dk, 3.0, tol_k);
  ok &= reliability::numerics_rule(log, "dV", pr.kv(), pr.dtype, g.dv, ref.dv, low.dv, 3.0);
  return ok;
}

bool any_nan(const std::vector<double>& x) {
  return std::any_of(x.begin(), x.end(), [](double e) { return std::isnan(e); });
}
bool all_finite(const std::vector<double>& x) {
  return std::all_of(x.begin(), x.end(), [](double e) { return std::isfinite(e); });
}
bool bitwise_equal(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0) return false;
  return true;
}

// One target per compiled backend for (mask, and optionally dtype / head dim): the first
// (dtype, head dim) that has both directions, bf16 and head dim 64 preferred.
std::vector<std::pair<Target, Problem>> targets(const std::string& mask, std::vector<attnforge_dtype> dtypes = {
                                                                              ATTNFORGE_BF16, ATTNFORGE_F16}) {
  std::vector<std::pair<Target, Problem>> out;
  const int mask_id = mask_id_by_name(mask);
  if (mask_id < 0) return out;
  for (Backend b : {Backend::unfused, Backend::fused, Backend::flash}) {
    bool found = false;
    for (attnforge_dtype dt : dtypes) {
      for (int d : {64, 128, 96, 192, 256, 32}) {
        const auto f = candidates(b, Direction::fwd, DType(int(dt)), d, mask_id);
        const auto g = candidates(b, Direction::bwd, DType(int(dt)), d, mask_id);
        if (f.empty() || g.empty()) continue;
        Problem p;
        p.dtype = dt, p.D = d, p.mask = mask;
        out.push_back({Target{b, "", ""}, p});
        found = true;
        break;
      }
      if (found) break;
    }
  }
  return out;
}

// Sk limit of a backend for a problem (fused keeps the key row on chip).
int sk_limit(const Target& t, const Problem& p, Direction dir) {
  int limit = 0;
  for (const VariantInfo* v : candidates(t.backend, dir, DType(int(p.dtype)), p.D, mask_id_by_name(p.mask))) {
    if (max_seqlen_k(v->key) == 0) return 1 << 30;
    limit = std::max(limit, max_seqlen_k(v->key));
  }
  return limit;
}

std::string name_of(const Target& t, const Problem& p) {
  return std::string(to_string(t.backend)) + " " + test::dtype_name(p.dtype) + " D" + std::to_string(p.D) + " " + p.mask;
}

#define REQUIRE_TARGETS(list)                                                         \
  do {                                                                                \
    if ((list).empty()) GTEST_SKIP() << "no backend compiled for this mask / dtype"; \
  } while (0)

// ---- fully masked rows ----------------------------------------------------------------------------
// Rows that see no key: O = 0 exactly, LSE = −inf, dQ = 0; keys no row sees: dK = dV = 0; no NaN.
TEST(EdgeCases, FullyMaskedRows) {
  ATTNFORGE_REQUIRE_GPU();
  int ran = 0;
  for (const std::string mask : {"causal", "window", "bias"}) {
    for (auto [t, p] : targets(mask)) {
      SCOPED_TRACE(name_of(t, p));
      p.B = 2, p.Hq = 4, p.Hkv = 2;
      p.Sq = 70, p.Sk = std::min(40, sk_limit(t, p, Direction::fwd));
      if (mask == "window") p.scalars[0] = 3, p.scalars[1] = 0;  // rows < Sq − Sk see nothing
      if (mask == "bias") {  // bool: rows 0, 5, 69 of every (b, h) and all of (b=1, h=2..3) masked
        p.Sq = 70, p.bias_dtype = ATTNFORGE_BOOL;
        p.bias.assign(size_t(p.B) * p.Hq * p.Sq * p.Sk, 1.0);
        for (int b = 0; b < p.B; ++b)
          for (int h = 0; h < p.Hq; ++h)
            for (int i = 0; i < p.Sq; ++i)
              for (int j = 0; j < p.Sk; ++j) {
                const bool masked = i == 0 || i == 5 || i == 69 || (b == 1 && h >= 2) || (j * 7 + i) % 11 == 0;
                p.bias[size_t(((b * p.Hq + h) * p.Sq + i) * p.Sk + j)] = masked ? 0.0 : 1.0;
              }
      }
      p.randomize(11);
      const Result g = run(p, t);
      ASSERT_EQ(g.fwd, ATTNFORGE_OK) << g.error;
      ASSERT_EQ(g.bwd, ATTNFORGE_OK) << g.error;
      ++ran;
      const Reference ref = reference(p, false);
      // Which rows see nothing, from the reference's LSE.
      int masked_rows = 0, bad_o = 0, bad_lse = 0, bad_dq = 0, bad_dkv = 0;
      for (int b = 0; b < p.B; ++b)
        for (int h = 0; h < p.Hq; ++h)
          for (int i = 0; i < p.Sq; ++i) {
            const size_t l = size_t((b * p.Hq + h) * p.Sq + i);
            if (ref.lse[l] != -kInf) continue;
            ++masked_rows;
            bad_lse += g.lse[l] != -kInf;
            for (int d = 0; d < p.D; ++d) {
              const size_t e = size_t(((b * p.Sq + i) * p.Hq + h) * p.D + d);
              bad_o += !(g.o[e] == 0.0);
              bad_dq += !(g.dq[e] == 0.0);
            }
          }
      // Keys no query of their kv head sees: reference dK = dV = 0 exactly there.
      for (size_t e = 0; e < ref.dk.size(); ++e)
        if (ref.dk[e] == 0.0 && ref.dv[e] == 0.0) bad_dkv += !(g.dk[e] == 0.0 && g.dv[e] == 0.0);
      EXPECT_GT(masked_rows, 0) << "the case has no fully masked row";
      EXPECT_EQ(bad_o, 0) << "O elements of fully masked rows that are not exactly 0";
      EXPECT_EQ(bad_lse, 0) << "LSE of fully masked rows that is not -inf";
      EXPECT_EQ(bad_dq, 0) << "dQ elements of fully masked rows that are not exactly 0";
      EXPECT_EQ(bad_dkv, 0) << "dK/dV of keys no query sees that are not exactly 0";
      for (const auto* x : {&g.o, &g.dq, &g.dk, &g.dv}) EXPECT_FALSE(any_nan(*x)) << "NaN in an output";
      std::ostringstream log;
      EXPECT_TRUE(passes_rule(p, g, log)) << log.str();
    }
  }
  // varlen: a sequence with no keys at all (its rows see nothing), beside normal ones
  for (auto [t, p] : targets("none")) {
    SCOPED_TRACE(name_of(t, p) + " varlen with an empty key sequence");
    p.B = 3, p.Hq = 2, p.Hkv = 1, p.Sq = 33, p.Sk = std::min(50, sk_limit(t, p, Direction::fwd));
    p.cu_q = {0, 33, 50, 51};
    p.cu_k = {0, 0, p.Sk, p.Sk + 9};
    p.randomize(12);
    const Result g = run(p, t);
    ASSERT_EQ(g.fwd, ATTNFORGE_OK) << g.error;
    ASSERT_EQ(g.bwd, ATTNFORGE_OK) << g.error;
    ++ran;
    int bad = 0;
    for (int i = 0; i < 33; ++i)
      for (int h = 0; h < p.Hq; ++h) {
        bad += g.lse[size_t(h * 51 + i)] != -kInf;
        for (int d = 0; d < p.D; ++d) {
          const size_t e = size_t((i * p.Hq + h) * p.D + d);
          bad += !(g.o[e] == 0.0) + !(g.dq[e] == 0.0);
        }
      }
    EXPECT_EQ(bad, 0) << "rows of the sequence without keys: O, dQ not 0 or LSE not -inf";
    std::ostringstream log;
    EXPECT_TRUE(passes_rule(p, g, log)) << log.str();
  }
  if (ran == 0) GTEST_SKIP() << "no backend compiled for causal, window or bias";
}

// ---- garbage in masked key/value rows -------------------------------------------------------------
// Keys that no query sees (outside a sliding window; or masked for every row by a boolean bias)
// may hold anything: the outputs must not change at all (bitwise), and their dK/dV stay 0.
// NaN/Inf is promised by the mask-aware kernels (flash, fused) for keys the mask kind's classifier
// hides (window here; causal and user predicates alike), which they never read. Keys hidden only
// by a bias tensor are read and weighted by P = 0, and unfused multiplies P = 0 by V inside cuBLAS:
// there 0 × NaN = NaN, as in PyTorch's math path (README, Known issues); finite garbage still
// changes nothing.
void masked_garbage_changes_nothing(double garbage) {
  int ran = 0;
  for (const std::string mask : {"window", "bias"}) {
    for (auto [t, p] : targets(mask, {ATTNFORGE_BF16, ATTNFORGE_F32, ATTNFORGE_F16})) {
      if (!std::isfinite(garbage) && (t.backend == Backend::unfused || mask == "bias")) continue;
      SCOPED_TRACE(name_of(t, p) + " garbage " + std::to_string(garbage));
      p.B = 2, p.Hq = 4, p.Hkv = 2, p.Sq = 48, p.Sk = std::min(200, sk_limit(t, p, Direction::fwd));
      std::vector<bool> masked_key(size_t(p.Sk), false);
      if (mask == "window") {
        // query i sees keys [i + Sk − Sq − 5, i + Sk − Sq + 2]: keys below Sk − Sq − 5 are never seen
        p.scalars[0] = 5, p.scalars[1] = 2;
        for (int j = 0; j < p.Sk - p.Sq - 5; ++j) masked_key[size_t(j)] = true;
      } else {
        p.bias_dtype = ATTNFORGE_BOOL;
        for (int j = 0; j < p.Sk; ++j) masked_key[size_t(j)] = j % 3 == 1 || (j > 60 && j < 130);
        p.bias.assign(size_t(p.B) * p.Hq * p.Sq * p.Sk, 1.0);
        for (size_t e = 0; e < p.bias.size(); ++e) p.bias[e] = masked_key[e % size_t(p.Sk)] ? 0.0 : 1.0;
      }
      p.randomize(21);
      Problem dirty = p;
      const double g = round_to_dtype(p.dtype, garbage);
      for (int b = 0; b < p.B; ++b)
        for (int j = 0; j < p.Sk; ++j)
          for (int h = 0; h < p.Hkv; ++h)
            for (int d = 0; d < p.D; ++d)
              if (masked_key[size_t(j)]) {
                const size_t e = size_t(((b * p.Sk + j) * p.Hkv + h) * p.D + d);
                dirty.k[e] = g, dirty.v[e] = g;
              }
      const Result clean = run(p, t), bad = run(dirty, t);
      ASSERT_EQ(clean.fwd, ATTNFORGE_OK) << clean.error;
      ASSERT_EQ(clean.bwd, ATTNFORGE_OK) << clean.error;
      ASSERT_EQ(bad.fwd, ATTNFORGE_OK) << bad.error;
      ASSERT_EQ(bad.bwd, ATTNFORGE_OK) << bad.error;
      ++ran;
      EXPECT_FALSE(any_nan(bad.o) || any_nan(bad.dq) || any_nan(bad.dk) || any_nan(bad.dv)) << "NaN leaked into an output";
      EXPECT_TRUE(bitwise_equal(clean.o, bad.o)) << "O changed";
      EXPECT_TRUE(bitwise_equal(clean.lse, bad.lse)) << "LSE changed";
      EXPECT_TRUE(bitwise_equal(clean.dq, bad.dq)) << "dQ changed";
      int moved = 0;
      for (size_t e = 0; e < clean.dk.size(); ++e) {
        const size_t j = (e / size_t(p.D * p.Hkv)) % size_t(p.Sk);
        if (masked_key[j]) moved += !(bad.dk[e] == 0.0 && bad.dv[e] == 0.0);
        else moved += std::memcmp(&clean.dk[e], &bad.dk[e], 8) != 0 || std::memcmp(&clean.dv[e], &bad.dv[e], 8) != 0;
      }
      EXPECT_EQ(moved, 0) << "dK/dV elements that changed (or are not 0 on masked keys)";
      std::ostringstream log;
      EXPECT_TRUE(passes_rule(p, clean, log)) << log.str();
    }
  }
  if (ran == 0) GTEST_SKIP() << "no backend compiled for window or bias";
}
TEST(EdgeCases, HugeValuesInMaskedKeysChangeNothing) {
  ATTNFORGE_REQUIRE_GPU();
  masked_garbage_changes_nothing(1e10);
}
TEST(EdgeCases, NanInMaskedKeysChangesNothing) {
  ATTNFORGE_REQUIRE_GPU();
  masked_garbage_changes_nothing(kNaN);
}

// ---- large logits ----------------------------------------------------------------------------------
// q·k ≈ 1e4 (scale 1): the softmax is nearly one-hot; exp2 of huge differences must not overflow;
// the gradients are held to the rule plus the fp32 summation slack of passes_rule_large_logits.
TEST(EdgeCases, LargeLogitsStayFinite) {
  ATTNFORGE_REQUIRE_GPU();
  int ran = 0;
  for (const std::string mask : {"none", "causal"})
    for (auto [t, p] : targets(mask)) {
      SCOPED_TRACE(name_of(t, p));
      p.B = 2, p.Hq = 2, p.Hkv = 1, p.Sq = 64, p.Sk = std::min(96, sk_limit(t, p, Direction::fwd));
      p.scale = 1.0f;
      p.randomize(31, 1.0);
      // |q·k| up to ~1e4: q, k of magnitude ~ sqrt(1e4 / D) · 4
      const double amp = 4.0 * std::sqrt(1e4 / p.D) / 2.0;
      for (double& x : p.q) x = round_to_dtype(p.dtype, x * amp);
      for (double& x : p.k) x = round_to_dtype(p.dtype, x * amp);
      double max_logit = 0;
      for (int i = 0; i < p.Sq; ++i)
        for (int j = 0; j < p.Sk; ++j) {
          double s = 0;
          for (int d = 0; d < p.D; ++d) s += p.q[size_t((i * p.Hq) * p.D + d)] * p.k[size_t((j * p.Hkv) * p.D + d)];
          max_logit = std::max(max_logit, std::abs(s));
        }
      EXPECT_GT(max_logit, 3e3) << "logits are not large";
      const Result g = run(p, t);
      ASSERT_EQ(g.fwd, ATTNFORGE_OK) << g.error;
      ASSERT_EQ(g.bwd, ATTNFORGE_OK) << g.error;
      ++ran;
      for (const auto* x : {&g.o, &g.lse, &g.dq, &g.dk, &g.dv}) EXPECT_TRUE(all_finite(*x)) << "non-finite output";
      std::ostringstream log;
      EXPECT_TRUE(passes_rule_large_logits(p, g, log)) << "max |q·k| = " << max_logit << "\n" << log.str();
    }
  if (ran == 0) GTEST_SKIP() << "nothing compiled";
}

// ---- rows that see only a few keys --------------------------------------------------------------------
// With one key P = 1 and dS = P∘(dP − δ) is exactly 0; with a few keys δ = rowsum(dO ∘ O) from the O
// rounded to the dtype is the largest error term of dS. Flash and fused take δ = Σ_j P·dP from the
// tile when the key row fits one tile (flash: the mma.sync kernel) or one key block (fused). These are
// the shapes the randomized sweep caught on the H200 (fused f16 D128 Sk 1 with Sq 190–255; flash D64
// Sq 1 with Sk 3 and 5), over a few seeds each, GQA.
TEST(EdgeCases, ShortKeyRowsBackward) {
  ATTNFORGE_REQUIRE_GPU();
  for (attnforge_backend backend : {ATTNFORGE_BACKEND_FLASH, ATTNFORGE_BACKEND_FUSED})
    for (attnforge_dtype t : {ATTNFORGE_F16, ATTNFORGE_BF16})
      for (int d : {64, 128})
        for (auto [sq, sk] : {std::pair{1, 1}, {1, 3}, {1, 5}, {202, 1}, {255, 1}, {64, 5}})
          for (uint64_t seed : {11u, 12u, 13u}) {
            test::Case c;
            c.dtype = t;
            c.head_dim = d;
            c.seqlen_q = sq;
            c.seqlen_k = sk;
            c.heads_q = 6;
            c.heads_kv = 2;
            c.seed = seed;
            EXPECT_TRUE(test::check_case(c, {.backend = backend}));
          }
  // With an additive bias (f16 tensor) and fully masked leading rows: the recomputed P of a one-key
  // row is 1 − ε when |s + bias| is large (the sweep's fused f16 D128 Sq 233 Sk 1 case); the fused
  // kernel renormalises P over the tile, so dK stays exactly 0.
  for (attnforge_backend backend : {ATTNFORGE_BACKEND_FLASH, ATTNFORGE_BACKEND_FUSED})
    for (attnforge_dtype t : {ATTNFORGE_F16, ATTNFORGE_BF16})
      for (int d : {64, 128})
        for (auto [sq, sk] : {std::pair{233, 1}, {97, 2}})
          for (uint64_t seed : {21u, 22u, 23u}) {
            SCOPED_TRACE(std::string(backend == ATTNFORGE_BACKEND_FLASH ? "flash" : "fused") + " bias Sq " +
                         std::to_string(sq) + " Sk " + std::to_string(sk));
            test::Case c;
            c.dtype = t;
            c.head_dim = d;
            c.seqlen_q = sq;
            c.seqlen_k = sk;
            c.heads_q = 4;
            c.heads_kv = 1;
            c.mask = "bias";
            c.bias = test::BiasKind::additive;
            c.masked_rows = 3;
            c.seed = seed;
            EXPECT_TRUE(test::check_case(c, {.backend = backend}));
          }
}

// ---- fp16 near its maximum --------------------------------------------------------------------------
// (a) V of magnitude 5e4..6.5e4: O is a convex combination of V rows, so it fits fp16 — a kernel
//     that accumulates or rescales O in fp16 overflows. (b) q, k near 6e4 with a small scale: the
//     unscaled q·k (≈1e11) overflows fp16 but not fp32 — softmax in fp32 must stay finite.
TEST(EdgeCases, Fp16NearMaximum) {
  ATTNFORGE_REQUIRE_GPU();
  const auto list = targets("none", {ATTNFORGE_F16});
  REQUIRE_TARGETS(list);
  for (auto [t, p] : list) {
    p.B = 1, p.Hq = 2, p.Hkv = 2, p.Sq = 40, p.Sk = std::min(72, sk_limit(t, p, Direction::fwd));
    p.randomize(41);
    std::mt19937_64 gen(5);
    std::uniform_real_distribution<double> mag(5e4, 6.5e4);
    {
      SCOPED_TRACE(name_of(t, p) + ": V near 6e4");
      Problem a = p;
      for (double& x : a.v) x = round_to_dtype(ATTNFORGE_F16, (x < 0 ? -1 : 1) * mag(gen));
      // dO small enough that dP = dO·Vᵀ fits fp16 in the plain baseline too (the rule needs a finite one)
      for (double& x : a.d_o) x = round_to_dtype(ATTNFORGE_F16, x * 1e-3);
      const Reference ref = reference(a, false);
      ASSERT_TRUE(all_finite(ref.o) && all_finite(ref.dq) && all_finite(ref.dk) && all_finite(ref.dv));
      const Result g = run(a, t);
      ASSERT_EQ(g.fwd, ATTNFORGE_OK) << g.error;
      ASSERT_EQ(g.bwd, ATTNFORGE_OK) << g.error;
      for (const auto* x : {&g.o, &g.lse, &g.dq, &g.dk, &g.dv}) EXPECT_TRUE(all_finite(*x)) << "non-finite output";
      std::ostringstream log;
      EXPECT_TRUE(passes_rule(a, g, log)) << log.str();
    }
    {
      SCOPED_TRACE(name_of(t, p) + ": q, k near 6e4, scale 2e-9");
      Problem b = p;
      for (double& x : b.q) x = round_to_dtype(ATTNFORGE_F16, (x < 0 ? -1 : 1) * mag(gen));
      for (double& x : b.k) x = round_to_dtype(ATTNFORGE_F16, (x < 0 ? -1 : 1) * mag(gen));
      b.scale = 2e-9f;  // logits = q·k·scale ≈ ±(D · 3.6e9 · 2e-9) ≈ ±500
      const Result g = run(b, t, /*backward=*/false);
      ASSERT_EQ(g.fwd, ATTNFORGE_OK) << g.error;
      EXPECT_TRUE(all_finite(g.o) && all_finite(g.lse)) << "non-finite O or LSE: q·k overflowed fp16 before scaling";
      // The plain fp16 baseline overflows here, so the rule has no baseline: bound by 4 fp16 ulps of max|O|.
      const Reference ref = reference(b, false);
      double err = 0, top = 0;
      for (size_t e = 0; e < ref.o.size(); ++e) err = std::max(err, std::abs(g.o[e] - ref.o[e])), top = std::max(top, std::abs(ref.o[e]));
      EXPECT_LE(err, top * std::ldexp(1.0, -8) + 1e-5) << "max|O − ref| = " << err << ", max|ref| = " << top;
    }
  }
}

// ---- batch invariance --------------------------------------------------------------------------------
// One request alone and the same request at slots 0, middle and last of batches of 12, 17 and 128 (the
// other slots random): forward bitwise equal for flash and fused; the rule against the reference for all.
TEST(EdgeCases, SingleRequestEqualsItselfInsideBatches) {
  ATTNFORGE_REQUIRE_GPU();
  int ran = 0;
  for (const std::string mask : {"causal", "none"})
    for (auto [t, p] : targets(mask)) {
      p.B = 1, p.Hq = 4, p.Hkv = 2, p.Sq = 77, p.Sk = std::min(131, sk_limit(t, p, Direction::fwd));
      p.randomize(51);
      const Result alone = run(p, t);
      ASSERT_EQ(alone.fwd, ATTNFORGE_OK) << alone.error;
      ASSERT_EQ(alone.bwd, ATTNFORGE_OK) << alone.error;
      std::ostringstream log0;
      EXPECT_TRUE(passes_rule(p, alone, log0)) << name_of(t, p) << " alone\n" << log0.str();
      const Reference ref = reference(p, false), low = reference(p, true);
      const size_t nq = p.q.size(), nk = p.k.size(), nl = size_t(p.lsev().numel());
      for (int batch : {12, 17, 128}) {
        Problem big = p;
        big.B = batch;
        big.randomize(uint64_t(batch) * 1000 + 7);
        for (int slot : {0, batch / 2, batch - 1}) {
          SCOPED_TRACE(name_of(t, p) + " batch " + std::to_string(batch) + " slot " + std::to_string(slot));
          Problem in = big;
          std::copy(p.q.begin(), p.q.end(), in.q.begin() + ptrdiff_t(slot * nq));
          std::copy(p.k.begin(), p.k.end(), in.k.begin() + ptrdiff_t(slot * nk));
          std::copy(p.v.begin(), p.v.end(), in.v.begin() + ptrdiff_t(slot * nk));
          std::copy(p.d_o.begin(), p.d_o.end(), in.d_o.begin() + ptrdiff_t(slot * nq));
          const Result g = run(in, t);
          ASSERT_EQ(g.fwd, ATTNFORGE_OK) << g.error;
          ASSERT_EQ(g.bwd, ATTNFORGE_OK) << g.error;
          ++ran;
          auto part = [](const std::vector<double>& x, size_t n, int s) {
            return std::vector<double>(x.begin() + ptrdiff_t(s * n), x.begin() + ptrdiff_t((s + 1) * n));
          };
          Result mine;
          mine.o = part(g.o, nq, slot), mine.lse = part(g.lse, nl, slot);
          mine.dq = part(g.dq, nq, slot), mine.dk = part(g.dk, nk, slot), mine.dv = part(g.dv, nk, slot);
          if (t.backend != Backend::unfused) {
            EXPECT_TRUE(bitwise_equal(mine.o, alone.o)) << "forward O differs from the request alone";
            EXPECT_TRUE(bitwise_equal(mine.lse, alone.lse)) << "forward LSE differs from the request alone";
          }
          std::ostringstream log;
          bool ok = reliability::numerics_rule(log, "O", p.qv(), p.dtype, mine.o, ref.o, low.o, 2.0);
          ok &= reliability::numerics_rule(log, "LSE", p.lsev(), ATTNFORGE_F32, mine.lse, ref.lse, low.lse, 2.0);
          ok &= reliability::numerics_rule(log, "dQ", p.qv(), p.dtype, mine.dq, ref.dq, low.dq, 3.0);
          ok &= reliability::numerics_rule(log, "dK", p.kv(), p.dtype, mine.dk, ref.dk, low.dk, 3.0);
          ok &= reliability::numerics_rule(log, "dV", p.kv(), p.dtype, mine.dv, ref.dv, low.dv, 3.0);
          EXPECT_TRUE(ok) << log.str();
        }
      }
    }
  if (ran == 0) GTEST_SKIP() << "nothing compiled";
}

// ---- CUDA graphs ----------------------------------------------------------------------------------
// Forward (caller LSE), forward without LSE (library temporary through cudaMallocAsync) and backward
// with library-allocated workspace, captured in global mode on a non-blocking stream, then replayed
// twice with new inputs copied into the same buffers: each replay matches an eager run bit for bit
// (forward) and the reference (all outputs).
TEST(EdgeCases, CudaGraphCaptureAndReplay) {
  ATTNFORGE_REQUIRE_GPU();
  int ran = 0;
  for (auto [t, p] : targets("causal")) {
    SCOPED_TRACE(name_of(t, p));
    p.B = 2, p.Hq = 4, p.Hkv = 2, p.Sq = 96, p.Sk = std::min(128, sk_limit(t, p, Direction::fwd));
    p.randomize(61);
    const attnforge_dtype dt = p.dtype;
    const size_t es = test::dtype_size(dt);
    const size_t nq = p.q.size(), nk = p.k.size();
    DeviceBuffer q(nq * es), k(nk * es), v(nk * es), d_o(nq * es), o(nq * es), o2(nq * es), lse(p.lsev().numel() * 4);
    DeviceBuffer dq(nq * es), dk(nk * es), dv(nk * es);
    attnforge_args a;
    attnforge_args_init(&a);
    a.q = reliability::tensor_of(q, dt, p.qv());
    a.k = reliability::tensor_of(k, dt, p.kv());
    a.v = reliability::tensor_of(v, dt, p.kv());
    a.o = reliability::tensor_of(o, dt, p.qv());
    a.lse = reliability::tensor_of(lse, ATTNFORGE_F32, p.lsev());
    a.mask.kind = "causal";
    a.backend = attnforge_backend(int(t.backend));
    attnforge_args fwd_nolse = a;
    fwd_nolse.o = reliability::tensor_of(o2, dt, p.qv());
    fwd_nolse.lse = attnforge_tensor{};
    attnforge_args bwd = a;
    bwd.d_o = reliability::tensor_of(d_o, dt, p.qv());
    bwd.dq = reliability::tensor_of(dq, dt, p.qv());
    bwd.dk = reliability::tensor_of(dk, dt, p.kv());
    bwd.dv = reliability::tensor_of(dv, dt, p.kv());

    cudaStream_t s;
    ATTNFORGE_TEST_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto load = [&](const Problem& x) {
      test::upload_into(q, x.q, dt), test::upload_into(k, x.k, dt), test::upload_into(v, x.v, dt);
      test::upload_into(d_o, x.d_o, dt);
    };
    auto all_calls = [&]() -> std::string {
      if (attnforge_status st = attnforge_forward(&a, s); st != ATTNFORGE_OK)
        return std::string("forward: ") + attnforge_last_error();
      if (attnforge_status st = attnforge_forward(&fwd_nolse, s); st != ATTNFORGE_OK)
        return std::string("forward without lse: ") + attnforge_last_error();
      if (attnforge_status st = attnforge_backward(&bwd, s); st != ATTNFORGE_OK)
        return std::string("backward: ") + attnforge_last_error();
      return "";
    };
    auto outputs = [&]() {
      ATTNFORGE_TEST_CUDA(cudaStreamSynchronize(s));
      Result r;
      r.o = test::download(o, nq, dt), r.lse = test::download(lse, size_t(p.lsev().numel()), ATTNFORGE_F32);
      r.dq = test::download(dq, nq, dt), r.dk = test::download(dk, nk, dt), r.dv = test::download(dv, nk, dt);
      EXPECT_TRUE(bitwise_equal(test::download(o2, nq, dt), r.o)) << "forward without LSE differs from with LSE";
      return r;
    };
    auto poison = [&] {
      for (DeviceBuffer* b : {&o, &o2, &lse, &dq, &dk, &dv}) b->poison();
    };
    // eager warm-up (first-call setup: cuBLAS handle, smem attributes), then eager reference runs
    load(p);
    ASSERT_EQ(all_calls(), "");
    std::vector<Problem> inputs = {p, p};
    inputs[1].randomize(62);
    std::vector<Result> eager;
    for (const Problem& x : inputs) {
      load(x), poison();
      ASSERT_EQ(all_calls(), "");
      eager.push_back(outputs());
    }
    // capture
    cudaGraph_t graph = nullptr;
    ATTNFORGE_TEST_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    const std::string captured = all_calls();
    const cudaError_t end = cudaStreamEndCapture(s, &graph);
    ASSERT_EQ(captured, "") << "a call failed during capture";
    ASSERT_EQ(end, cudaSuccess) << "capture was invalidated: " << cudaGetErrorString(end);
    size_t nodes = 0;
    ATTNFORGE_TEST_CUDA(cudaGraphGetNodes(graph, nullptr, &nodes));
    EXPECT_GT(nodes, 0u);
    cudaGraphExec_t exec = nullptr;
    ATTNFORGE_TEST_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    for (size_t i = 0; i < inputs.size(); ++i) {
      SCOPED_TRACE("replay " + std::to_string(i));
      load(inputs[i]), poison();
      ATTNFORGE_TEST_CUDA(cudaGraphLaunch(exec, s));
      const Result g = outputs();
      EXPECT_TRUE(bitwise_equal(g.o, eager[i].o)) << "replayed forward differs from the eager forward";
      EXPECT_TRUE(bitwise_equal(g.lse, eager[i].lse)) << "replayed LSE differs from the eager LSE";
      std::ostringstream log;
      EXPECT_TRUE(passes_rule(inputs[i], g, log)) << log.str();
    }
    ++ran;
    ATTNFORGE_TEST_CUDA(cudaGraphExecDestroy(exec));
    ATTNFORGE_TEST_CUDA(cudaGraphDestroy(graph));
    ATTNFORGE_TEST_CUDA(cudaStreamDestroy(s));
  }
  if (ran == 0) GTEST_SKIP() << "no backend compiled for causal";
}

// ---- tensors over 2³¹ elements ------------------------------------------------------------------------
// q, k, v, o (B, 128, H, D) with B·128·H·D > 2³¹ (flash, else fused): either the call runs and the first
// and last sequences match the reference, or it is rejected with INVALID_ARGUMENT / UNSUPPORTED, a
// message, and outputs left untouched. Bulk rows are zeros (memset); the checked rows are random.
TEST(EdgeCases, TensorsOverTwoToThe31Elements) {
  ATTNFORGE_REQUIRE_GPU();
  std::vector<std::pair<Target, Problem>> list;
  for (auto& tp : targets("causal"))
    if (tp.first.backend != Backend::unfused) list.push_back(tp);
  REQUIRE_TARGETS(list);
  auto [t, p] = list.back();  // flash when compiled
  SCOPED_TRACE(name_of(t, p));
  const int64_t S = std::min(128, sk_limit(t, p, Direction::fwd)), H = std::max<int64_t>(1, 512 / p.D);
  const int64_t per_seq = S * H * p.D;
  const int64_t B = (int64_t(1) << 31) / per_seq + 1;  // just over 2³¹ elements per tensor
  const size_t n = size_t(B * per_seq), es = test::dtype_size(p.dtype);
  ASSERT_GT(n, size_t(1) << 31);
  size_t free_bytes = 0, total_bytes = 0;
  ATTNFORGE_TEST_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
  const size_t need = 8 * n * es + 2 * n * 4 + (size_t(1) << 30);  // 8 tensors + fp32 accumulators + slack
  if (free_bytes < need) GTEST_SKIP() << "needs about " << (need >> 30) << " GiB of free device memory, have " << (free_bytes >> 30);
  std::printf("[ edge     ] %s: B=%lld S=%lld H=%lld D=%d: %zu elements per tensor (%.1f GiB)\n", name_of(t, p).c_str(),
              (long long)B, (long long)S, (long long)H, p.D, n, double(n * es) / (1 << 30));

  DeviceBuffer q(n * es, false), k(n * es, false), v(n * es, false), d_o(n * es, false);
  for (DeviceBuffer* b : {&q, &k, &v, &d_o}) ATTNFORGE_TEST_CUDA(cudaMemset(b->get(), 0, b->bytes()));
  DeviceBuffer o(n * es), lse(size_t(B * H * S) * 4), dq(n * es), dk(n * es), dv(n * es);
  // one random sequence at slot 0 and at the last slot
  Problem one = p;
  one.B = 1, one.Sq = one.Sk = int(S), one.Hq = one.Hkv = int(H);
  one.mask = "causal";
  one.randomize(71);
  const size_t last = size_t(B - 1) * size_t(per_seq);
  for (size_t at : {size_t(0), last}) {
    const std::pair<DeviceBuffer*, const std::vector<double>*> parts[] = {
        {&q, &one.q}, {&k, &one.k}, {&v, &one.v}, {&d_o, &one.d_o}};
    for (auto [buf, host] : parts) {
      DeviceBuffer tmp = test::upload(*host, p.dtype);
      ATTNFORGE_TEST_CUDA(cudaMemcpy(buf->as<char>() + at * es, tmp.get(), tmp.bytes(), cudaMemcpyDeviceToDevice));
    }
  }
  attnforge_args a;
  attnforge_args_init(&a);
  const View tok = reliability::contiguous_view({B, S, H, p.D});
  a.q = reliability::tensor_of(q, p.dtype, tok), a.k = reliability::tensor_of(k, p.dtype, tok);
  a.v = reliability::tensor_of(v, p.dtype, tok), a.o = reliability::tensor_of(o, p.dtype, tok);
  a.lse = reliability::tensor_of(lse, ATTNFORGE_F32, reliability::contiguous_view({B, H, S}));
  a.mask.kind = "causal";
  a.backend = attnforge_backend(int(t.backend));
  const attnforge_status st = attnforge_forward(&a, nullptr);
  ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
  if (st != ATTNFORGE_OK) {
    const std::string msg = attnforge_last_error();
    std::printf("[ edge     ] rejected: %s: %s\n", attnforge_status_string(st), msg.c_str());
    EXPECT_TRUE(st == ATTNFORGE_INVALID_ARGUMENT || st == ATTNFORGE_UNSUPPORTED) << attnforge_status_string(st) << ": " << msg;
    EXPECT_FALSE(msg.empty()) << "a rejection must say why";
    const auto head = test::download(o.get(), size_t(per_seq), p.dtype);
    EXPECT_TRUE(std::all_of(head.begin(), head.end(), [](double x) { return std::isnan(x); })) << "rejected call wrote O";
    return;
  }
  a.d_o = reliability::tensor_of(d_o, p.dtype, tok);
  a.dq = reliability::tensor_of(dq, p.dtype, tok), a.dk = reliability::tensor_of(dk, p.dtype, tok);
  a.dv = reliability::tensor_of(dv, p.dtype, tok);
  const attnforge_status sb = attnforge_backward(&a, nullptr);
  ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
  ASSERT_EQ(sb, ATTNFORGE_OK) << "forward ran, backward failed: " << attnforge_last_error();
  for (size_t at : {size_t(0), last}) {
    SCOPED_TRACE(at == 0 ? "first sequence" : "last sequence (offsets beyond 2^31)");
    const size_t b = at / size_t(per_seq);
    Result g;
    auto grab = [&](const DeviceBuffer& x) { return test::download(x.as<char>() + at * es, size_t(per_seq), p.dtype); };
    g.o = grab(o), g.dq = grab(dq), g.dk = grab(dk), g.dv = grab(dv);
    g.lse = test::download(lse.as<char>() + b * size_t(H * S) * 4, size_t(H * S), ATTNFORGE_F32);
    std::ostringstream log;
    EXPECT_TRUE(passes_rule(one, g, log)) << log.str();
  }
  // a zero sequence in the middle: q = k = v = 0 ⇒ O = 0, finite
  const auto mid = test::download(o.as<char>() + size_t(B / 2) * size_t(per_seq) * es, size_t(per_seq), p.dtype);
  EXPECT_TRUE(std::all_of(mid.begin(), mid.end(), [](double x) { return x == 0.0; })) << "middle (zero) sequence: O != 0";
}

// ---- more heads or sequences than a grid dimension holds -------------------------------------------
// Flash and fused launch one grid row per head and per sequence (at most 65535 each): the selector
// sends such calls to unfused under AUTO (host test SelectTest.GridLimitsSendManyHeadsOrSequencesToUnfused),
// which must then run them: 66000 packed sequences of 0–2 tokens (unfused runs its GEMMs per
// sequence: one head keeps that to ~0.5 M cuBLAS calls), and 66000 heads of one sequence.
TEST(EdgeCases, MoreSequencesOrHeadsThanAGridDimension) {
  ATTNFORGE_REQUIRE_GPU();
  test::Case seqs;
  for (int i = 0; i < 66000; ++i) seqs.varlen_q.push_back(i % 3), seqs.varlen_k.push_back(1 + (i / 3) % 2);
  seqs.mask = "causal";
  test::Case heads;
  heads.seqlen_q = 3, heads.seqlen_k = 5, heads.heads_q = heads.heads_kv = 66000;
  for (const test::Case& c : {seqs, heads}) EXPECT_TRUE(test::check_case(c, {.backend = ATTNFORGE_BACKEND_AUTO}));
}

}  // namespace
