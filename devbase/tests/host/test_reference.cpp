// The CPU reference (reference.hpp) against hand-computed cases (2×2, causal bottom-right with
// Sq ≠ Sk, fully masked rows), structural identities (GQA = expanded MHA, varlen = per-sequence
// dense, strides, default scale), finite differences for the backward, and the low-precision
// emulation's error sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "attnforge/reference.hpp"

namespace attnforge {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

std::vector<double> randn(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> d;
  std::vector<double> v(n);
  for (double& x : v) x = d(gen);
  return v;
}

// Dense problem storage: q/o/d_o/dq (B, Sq, Hq, D), k/v/dk/dv (B, Sk, Hkv, D), lse (B, Hq, Sq),
// p (B, Hq, Sq, Sk), all contiguous.
struct Dense {
  ReferenceProblem pr;
  std::vector<double> q, k, v, o, lse, p, d_o, dq, dk, dv;
  Dense(int B, int Sq, int Sk, int Hq, int Hkv, int D, unsigned seed = 1) {
    pr.batch = B, pr.seqlen_q = Sq, pr.seqlen_k = Sk, pr.heads_q = Hq, pr.heads_kv = Hkv, pr.head_dim = D;
    q = randn(size_t(B) * Sq * Hq * D, seed);
    k = randn(size_t(B) * Sk * Hkv * D, seed + 1);
    v = randn(size_t(B) * Sk * Hkv * D, seed + 2);
    d_o = randn(size_t(B) * Sq * Hq * D, seed + 3);
    o.assign(q.size(), 0.0), dq.assign(q.size(), 0.0), dk.assign(k.size(), 0.0), dv.assign(k.size(), 0.0);
    lse.assign(size_t(B) * Hq * Sq, 0.0), p.assign(size_t(B) * Hq * Sq * Sk, 0.0);
  }
  HostTensor tq() { return HostTensor::contiguous(q.data(), {pr.batch, pr.seqlen_q, pr.heads_q, pr.head_dim}); }
  HostTensor tk() { return HostTensor::contiguous(k.data(), {pr.batch, pr.seqlen_k, pr.heads_kv, pr.head_dim}); }
  HostTensor tv() { return HostTensor::contiguous(v.data(), {pr.batch, pr.seqlen_k, pr.heads_kv, pr.head_dim}); }
  HostTensor to() { return HostTensor::contiguous(o.data(), {pr.batch, pr.seqlen_q, pr.heads_q, pr.head_dim}); }
  HostTensor tlse() { return HostTensor::contiguous(lse.data(), {pr.batch, pr.heads_q, pr.seqlen_q}); }
  HostTensor tp() { return HostTensor::contiguous(p.data(), {pr.batch, pr.heads_q, pr.seqlen_q, pr.seqlen_k}); }
  HostTensor tdo() { return HostTensor::contiguous(d_o.data(), {pr.batch, pr.seqlen_q, pr.heads_q, pr.head_dim}); }
  HostTensor tdq() { return HostTensor::contiguous(dq.data(), {pr.batch, pr.seqlen_q, pr.heads_q, pr.head_dim}); }
  HostTensor tdk() { return HostTensor::contiguous(dk.data(), {pr.batch, pr.seqlen_k, pr.heads_kv, pr.head_dim}); }
  HostTensor tdv() { return HostTensor::contiguous(dv.data(), {pr.batch, pr.seqlen_k, pr.heads_kv, pr.head_dim}); }
  void forward() { reference_forward(pr, tq(), tk(), tv(), to(), tlse(), tp()); }
  void backward() { reference_backward(pr, tq(), tk(), tv(), tdo(), tdq(), tdk(), tdv()); }
};

TEST(Reference, TwoByTwo) {
  Dense t(1, 2, 2, 1, 1, 2);
  t.q = {1, 0, 0, 1};
  t.k = {1, 0, 0, 1};
  t.v = {1, 2, 3, 4};
  t.pr.scale = 1.0;
  t.forward();
  // Row 0: S = [1, 0] ⇒ P = [e, 1] / (e + 1); row 1: S = [0, 1] ⇒ P = [1, e] / (e + 1).
  const double e = std::exp(1.0), a = e / (e + 1), b = 1 / (e + 1);
  EXPECT_NEAR(t.p[0], a, 1e-15);
  EXPECT_NEAR(t.p[1], b, 1e-15);
  EXPECT_NEAR(t.p[2], b, 1e-15);
  EXPECT_NEAR(t.p[3], a, 1e-15);
  EXPECT_NEAR(t.o[0], a * 1 + b * 3, 1e-15);
  EXPECT_NEAR(t.o[1], a * 2 + b * 4, 1e-15);
  EXPECT_NEAR(t.o[2], b * 1 + a * 3, 1e-15);
  EXPECT_NEAR(t.o[3], b * 2 + a * 4, 1e-15);
  EXPECT_NEAR(t.lse[0], std::log(e + 1), 1e-15);
  EXPECT_NEAR(t.lse[1], std::log(e + 1), 1e-15);
}

TEST(Reference, DefaultScaleIsInverseSqrtD) {
  Dense a(1, 3, 5, 1, 1, 16), b(1, 3, 5, 1, 1, 16), c(1, 3, 5, 1, 1, 16);
  b.pr.scale = 0.25;  // 1/sqrt(16)
  c.pr.scale = std::numeric_limits<double>::quiet_NaN();
  a.forward(), b.forward(), c.forward();
  EXPECT_EQ(a.o, b.o);
  EXPECT_EQ(c.o, b.o);
}

TEST(Reference, CausalBottomRightWithSqLessThanSk) {
  // Sq = 2, Sk = 3, Q = 0 ⇒ all visible scores equal: query 0 sees keys 0, 1 (0 ≤ 0 + 3 − 2 = 1);
  // query 1 sees keys 0, 1, 2.
  Dense t(1, 2, 3, 1, 1, 1);
  t.q = {0, 0};
  t.v = {1, 2, 4};
  t.pr.mask = "causal";
  t.forward();
  const std::vector<double> p = {0.5, 0.5, 0.0, 1.0 / 3, 1.0 / 3, 1.0 / 3};
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(t.p[i], p[i], 1e-15) << i;
  EXPECT_NEAR(t.o[0], 1.5, 1e-15);
  EXPECT_NEAR(t.o[1], 7.0 / 3, 1e-15);
  EXPECT_NEAR(t.lse[0], std::log(2.0), 1e-15);
  EXPECT_NEAR(t.lse[1], std::log(3.0), 1e-15);
}

TEST(Reference, FullyMaskedRowsCausalSqGreaterThanSk) {
  // Sq = 3, Sk = 1: query i sees key 0 iff 0 ≤ i − 2 ⇒ rows 0 and 1 see nothing.
  Dense t(1, 3, 1, 2, 1, 4);
  t.pr.mask = "causal";
  t.forward();
  t.backward();
  for (int h = 0; h < 2; ++h) {
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(t.lse[size_t(h * 3 + i)], kNegInf);
      for (int d = 0; d < 4; ++d) {
        EXPECT_EQ(t.o[size_t((i * 2 + h) * 4 + d)], 0.0);
        EXPECT_EQ(t.dq[size_t((i * 2 + h) * 4 + d)], 0.0);
      }
    }
    // Row 2 sees key 0 only: O = v0, LSE = its score, dQ = 0 (softmax of one element is constant).
    double s = 0;
    for (int d = 0; d < 4; ++d) s += t.q[size_t((2 * 2 + h) * 4 + d)] * t.k[size_t(d)];
    EXPECT_NEAR(t.lse[size_t(h * 3 + 2)], s * 0.5, 1e-14);
    for (int d = 0; d < 4; ++d) {
      EXPECT_NEAR(t.o[size_t((2 * 2 + h) * 4 + d)], t.v[size_t(d)], 1e-15);
      EXPECT_NEAR(t.dq[size_t((2 * 2 + h) * 4 + d)], 0.0, 1e-14);
    }
  }
  // dV0 = Σ_h dO(row 2, h): the only query that sees key 0.
  for (int d = 0; d < 4; ++d)
    EXPECT_NEAR(t.dv[size_t(d)], t.d_o[size_t((2 * 2 + 0) * 4 + d)] + t.d_o[size_t((2 * 2 + 1) * 4 + d)], 1e-14);
  for (double x : t.o) EXPECT_FALSE(std::isnan(x));
}

TEST(Reference, FullyMaskedRowByBoolBiasAndAdditiveInf) {
  for (bool boolean : {true, false}) {
    Dense t(1, 3, 4, 1, 1, 8);
    std::vector<double> bias(12, boolean ? 1.0 : 0.5);
    for (int j = 0; j < 4; ++j) bias[size_t(4 + j)] = boolean ? 0.0 : kNegInf;  // row 1 masked
    t.pr.mask = "bias";
    t.pr.bias = HostTensor::contiguous(bias.data(), {1, 1, 3, 4});
    t.pr.bias_is_bool = boolean;
    t.forward();
    t.backward();
    EXPECT_EQ(t.lse[1], kNegInf);
    for (int d = 0; d < 8; ++d) {
      EXPECT_EQ(t.o[size_t(8 + d)], 0.0);
      EXPECT_EQ(t.dq[size_t(8 + d)], 0.0);
    }
    EXPECT_TRUE(std::isfinite(t.lse[0]) && std::isfinite(t.lse[2]));
  }
}

TEST(Reference, ConstantAdditiveBiasChangesOnlyLse) {
  Dense a(1, 4, 6, 1, 1, 8), b(1, 4, 6, 1, 1, 8);
  std::vector<double> bias(1, 3.0);
  b.pr.mask = "bias";
  b.pr.bias = HostTensor::contiguous(bias.data(), {1, 1, 1, 1});  // broadcast everywhere
  a.forward(), b.forward();
  for (size_t i = 0; i < a.o.size(); ++i) EXPECT_NEAR(a.o[i], b.o[i], 1e-14);
  for (size_t i = 0; i < a.lse.size(); ++i) EXPECT_NEAR(a.lse[i] + 3.0, b.lse[i], 1e-13);
}

TEST(Reference, WindowMaskPattern) {
  Dense t(1, 6, 6, 1, 1, 2);
  t.pr.mask = "window";
  t.pr.scalars[0] = 2, t.pr.scalars[1] = 1;
  t.forward();
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j) EXPECT_EQ(t.p[size_t(i * 6 + j)] > 0, j >= i - 2 && j <= i + 1) << i << "," << j;
}

TEST(Reference, GqaEqualsExpandedMha) {
  const int B = 2, Sq = 5, Sk = 7, Hq = 4, Hkv = 2, D = 3;
  Dense g(B, Sq, Sk, Hq, Hkv, D), m(B, Sq, Sk, Hq, Hq, D);
  g.pr.mask = m.pr.mask = "causal";
  m.q = g.q, m.d_o = g.d_o;
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < Sk; ++j)
      for (int h = 0; h < Hq; ++h)
        for (int d = 0; d < D; ++d) {
          const size_t src = size_t(((b * Sk + j) * Hkv + h / (Hq / Hkv)) * D + d);
          const size_t dst = size_t(((b * Sk + j) * Hq + h) * D + d);
          m.k[dst] = g.k[src], m.v[dst] = g.v[src];
        }
  g.forward(), m.forward(), g.backward(), m.backward();
  EXPECT_EQ(g.o, m.o);
  EXPECT_EQ(g.lse, m.lse);
  for (size_t i = 0; i < g.dq.size(); ++i) EXPECT_NEAR(g.dq[i], m.dq[i], 1e-13);
  // dK of a kv head = Σ of the expanded heads' dK.
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < Sk; ++j)
      for (int hk = 0; hk < Hkv; ++hk)
        for (int d = 0; d < D; ++d) {
          double sk = 0, sv = 0;
          for (int h = hk * 2; h < hk * 2 + 2; ++h) {
            sk += m.dk[size_t(((b * Sk + j) * Hq + h) * D + d)];
            sv += m.dv[size_t(((b * Sk + j) * Hq + h) * D + d)];
          }
          EXPECT_NEAR(g.dk[size_t(((b * Sk + j) * Hkv + hk) * D + d)], sk, 1e-13);
          EXPECT_NEAR(g.dv[size_t(((b * Sk + j) * Hkv + hk) * D + d)], sv, 1e-13);
        }
}

TEST(Reference, BackwardMatchesFiniteDifferences) {
  // L = Σ dO ∘ O; dL/dx by central differences for every input element.
  for (const char* mask : {"none", "causal", "window", "bias"}) {
    SCOPED_TRACE(mask);
    Dense t(2, 3, 4, 2, 1, 5);
    std::vector<double> bias = randn(2 * 2 * 3 * 4, 9);
    t.pr.mask = mask;
    t.pr.scalars[0] = 1, t.pr.scalars[1] = 0;
    if (std::string(mask) == "bias") t.pr.bias = HostTensor::contiguous(bias.data(), {2, 2, 3, 4});
    t.backward();
    auto loss = [&] {
      t.forward();
      double l = 0;
      for (size_t i = 0; i < t.o.size(); ++i) l += t.d_o[i] * t.o[i];
      return l;
    };
    auto check = [&](std::vector<double>& x, const std::vector<double>& grad, const char* name) {
      for (size_t i = 0; i < x.size(); ++i) {
        const double x0 = x[i], h = 1e-5;
        x[i] = x0 + h;
        const double lp = loss();
        x[i] = x0 - h;
        const double lm = loss();
        x[i] = x0;
        EXPECT_NEAR(grad[i], (lp - lm) / (2 * h), 1e-7) << name << "[" << i << "]";
      }
    };
    const auto dq = t.dq, dk = t.dk, dv = t.dv;
    check(t.q, dq, "dq");
    check(t.k, dk, "dk");
    check(t.v, dv, "dv");
  }
}

TEST(Reference, VarlenEqualsPerSequenceDense) {
  // Four sequences, one with no queries and one with no keys (its queries see nothing).
  const std::vector<int32_t> cu_q = {0, 3, 3, 8, 10}, cu_k = {0, 4, 6, 12, 12};
  const int Hq = 2, Hkv = 1, D = 4, total_q = 10, total_k = 12;
  auto q = randn(size_t(total_q) * Hq * D, 1), k = randn(size_t(total_k) * Hkv * D, 2);
  auto v = randn(size_t(total_k) * Hkv * D, 3), d_o = randn(size_t(total_q) * Hq * D, 4);
  std::vector<double> o(q.size(), 7.0), lse(size_t(Hq) * total_q, 7.0), dq(q.size(), 7.0), dk(k.size(), 7.0),
      dv(v.size(), 7.0);
  ReferenceProblem pr;
  pr.batch = 4, pr.heads_q = Hq, pr.heads_kv = Hkv, pr.head_dim = D;
  pr.cu_seqlens_q = cu_q.data(), pr.cu_seqlens_k = cu_k.data();
  pr.mask = "causal";
  reference_forward(pr, HostTensor::contiguous(q.data(), {total_q, Hq, D}),
                    HostTensor::contiguous(k.data(), {total_k, Hkv, D}),
                    HostTensor::contiguous(v.data(), {total_k, Hkv, D}),
                    HostTensor::contiguous(o.data(), {total_q, Hq, D}), HostTensor::contiguous(lse.data(), {Hq, total_q}));
  reference_backward(pr, HostTensor::contiguous(q.data(), {total_q, Hq, D}),
                     HostTensor::contiguous(k.data(), {total_k, Hkv, D}),
                     HostTensor::contiguous(v.data(), {total_k, Hkv, D}),
                     HostTensor::contiguous(d_o.data(), {total_q, Hq, D}),
                     HostTensor::contiguous(dq.data(), {total_q, Hq, D}),
                     HostTensor::contiguous(dk.data(), {total_k, Hkv, D}),
                     HostTensor::contiguous(dv.data(), {total_k, Hkv, D}));
  for (int b = 0; b < 4; ++b) {
    const int sq = cu_q[b + 1] - cu_q[b], sk = cu_k[b + 1] - cu_k[b];
    if (sq == 0) continue;
    Dense t(1, sq, std::max(sk, 1), Hq, Hkv, D);
    if (sk == 0) {  // no keys: every row fully masked
      for (int i = cu_q[b]; i < cu_q[b + 1]; ++i)
        for (int h = 0; h < Hq; ++h) {
          EXPECT_EQ(lse[size_t(h * total_q + i)], kNegInf);
          for (int d = 0; d < D; ++d) {
            EXPECT_EQ(o[size_t((i * Hq + h) * D + d)], 0.0);
            EXPECT_EQ(dq[size_t((i * Hq + h) * D + d)], 0.0);
          }
        }
      continue;
    }
    std::copy(q.begin() + cu_q[b] * Hq * D, q.begin() + cu_q[b + 1] * Hq * D, t.q.begin());
    std::copy(d_o.begin() + cu_q[b] * Hq * D, d_o.begin() + cu_q[b + 1] * Hq * D, t.d_o.begin());
    std::copy(k.begin() + cu_k[b] * Hkv * D, k.begin() + cu_k[b + 1] * Hkv * D, t.k.begin());
    std::copy(v.begin() + cu_k[b] * Hkv * D, v.begin() + cu_k[b + 1] * Hkv * D, t.v.begin());
    t.pr.mask = "causal";
    t.forward(), t.backward();
    for (int i = 0; i < sq * Hq * D; ++i) {
      EXPECT_EQ(o[size_t(cu_q[b] * Hq * D + i)], t.o[size_t(i)]);
      EXPECT_NEAR(dq[size_t(cu_q[b] * Hq * D + i)], t.dq[size_t(i)], 1e-13);
    }
    for (int i = 0; i < sk * Hkv * D; ++i) {
      EXPECT_NEAR(dk[size_t(cu_k[b] * Hkv * D + i)], t.dk[size_t(i)], 1e-13);
      EXPECT_NEAR(dv[size_t(cu_k[b] * Hkv * D + i)], t.dv[size_t(i)], 1e-13);
    }
    for (int h = 0; h < Hq; ++h)
      for (int i = 0; i < sq; ++i) EXPECT_EQ(lse[size_t(h * total_q + cu_q[b] + i)], t.lse[size_t(h * sq + i)]);
  }
}

TEST(Reference, StridesAreHonoured) {
  Dense c(2, 5, 6, 2, 2, 4);
  c.forward();
  // The same q in a padded layout: head stride 7 instead of 4.
  std::vector<double> qp(size_t(2 * 5 * 2 * 7), 99.0), op(qp.size(), 0.0);
  for (int r = 0; r < 2 * 5 * 2; ++r)
    for (int d = 0; d < 4; ++d) qp[size_t(r * 7 + d)] = c.q[size_t(r * 4 + d)];
  HostTensor tq = HostTensor::contiguous(qp.data(), {2, 5, 2, 7}), to = HostTensor::contiguous(op.data(), {2, 5, 2, 7});
  tq.sizes[3] = to.sizes[3] = 4;
  reference_forward(c.pr, tq, c.tk(), c.tv(), to);
  for (int r = 0; r < 2 * 5 * 2; ++r)
    for (int d = 0; d < 4; ++d) EXPECT_EQ(op[size_t(r * 7 + d)], c.o[size_t(r * 4 + d)]);
}

TEST(Reference, LowPrecisionErrorSizes) {
  auto max_err = [](attnforge_dtype dt) {
    Dense t(1, 33, 47, 2, 1, 64, 5), l(1, 33, 47, 2, 1, 64, 5);
    for (auto* x : {&t.q, &t.k, &t.v, &t.d_o})
      for (double& e : *x) e = round_to_dtype(dt, e);
    l.q = t.q, l.k = t.k, l.v = t.v, l.d_o = t.d_o;
    t.forward();
    reference_lowp_forward(dt, l.pr, l.tq(), l.tk(), l.tv(), l.to(), l.tlse(), l.tp());
    double e = 0;
    for (size_t i = 0; i < t.o.size(); ++i) e = std::max(e, std::abs(t.o[i] - l.o[i]));
    for (size_t i = 0; i < l.o.size(); ++i) EXPECT_EQ(l.o[i], round_to_dtype(dt, l.o[i]));  // outputs in dtype
    return e;
  };
  const double e32 = max_err(ATTNFORGE_F32), e16 = max_err(ATTNFORGE_F16), ebf = max_err(ATTNFORGE_BF16);
  EXPECT_LT(e32, 1e-5);
  EXPECT_GT(e16, 0.0);
  EXPECT_LT(e16, 1e-2);
  EXPECT_GT(ebf, e16);
  EXPECT_LT(ebf, 5e-2);
}

TEST(Reference, LowPrecisionBackwardIsCloseAndRounded) {
  Dense t(1, 17, 23, 2, 2, 32, 3), l(1, 17, 23, 2, 2, 32, 3);
  for (auto* x : {&t.q, &t.k, &t.v, &t.d_o})
    for (double& e : *x) e = round_to_dtype(ATTNFORGE_BF16, e);
  l.q = t.q, l.k = t.k, l.v = t.v, l.d_o = t.d_o;
  t.pr.mask = l.pr.mask = "causal";
  t.backward();
  reference_lowp_backward(ATTNFORGE_BF16, l.pr, l.tq(), l.tk(), l.tv(), l.tdo(), l.tdq(), l.tdk(), l.tdv());
  double e = 0, scale = 0;
  for (size_t i = 0; i < t.dq.size(); ++i) e = std::max(e, std::abs(t.dq[i] - l.dq[i])), scale = std::max(scale, std::abs(t.dq[i]));
  EXPECT_GT(e, 0.0);
  EXPECT_LT(e, 0.05 * scale);
  for (double x : l.dk) EXPECT_EQ(x, round_to_dtype(ATTNFORGE_BF16, x));
}

TEST(Reference, DtypeConversions) {
  // Round to nearest even, overflow to inf, subnormals, NaN.
  EXPECT_EQ(f32_to_bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16_bits(1.00390625f), 0x3f80);  // tie between 0x3f80 and 0x3f81 → even
  EXPECT_EQ(f32_to_bf16_bits(1.01171875f), 0x3f82);  // tie between 0x3f81 and 0x3f82 → even
  EXPECT_TRUE(std::isnan(bf16_bits_to_f32(f32_to_bf16_bits(std::nanf("")))));
  EXPECT_EQ(f32_to_f16_bits(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16_bits(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16_bits(65520.0f), 0x7c00);  // rounds up to inf
  EXPECT_EQ(f32_to_f16_bits(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16_bits(5.9604644775390625e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16_bits(2.98023223876953125e-08f), 0x0000);  // half of it: tie → even (0)
  EXPECT_EQ(f16_bits_to_f32(0x0001), 5.9604644775390625e-08f);
  EXPECT_EQ(f16_bits_to_f32(0x3555), 0.333251953125f);
  for (float x : {0.1f, -3.7f, 1e-5f, 1234.5f}) {
    EXPECT_EQ(f16_bits_to_f32(f32_to_f16_bits(x)), float(round_to_dtype(ATTNFORGE_F16, x)));
    EXPECT_NEAR(f16_bits_to_f32(f32_to_f16_bits(x)), x, std::abs(x) * 1e-3 + 1e-7);
    EXPECT_NEAR(bf16_bits_to_f32(f32_to_bf16_bits(x)), x, std::abs(x) * 4e-3);
  }
  EXPECT_EQ(f16_bits_to_f32(f32_to_f16_bits(-std::numeric_limits<float>::infinity())),
            -std::numeric_limits<float>::infinity());
}

TEST(Reference, RejectsBadInput) {
  Dense t(1, 2, 2, 1, 1, 2);
  t.pr.mask = "nope";
  EXPECT_THROW(t.forward(), std::invalid_argument);
  t.pr.mask = "bias";  // no tensor
  EXPECT_THROW(t.forward(), std::invalid_argument);
}

}  // namespace
}  // namespace attnforge

namespace attnforge {
namespace {

TEST(Reference, FloatOverloadsMatchDouble) {
  Dense t(2, 5, 7, 4, 2, 8);
  t.pr.mask = "causal";
  t.forward();
  t.backward();
  auto f = [](const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); };
  std::vector<float> q = f(t.q), k = f(t.k), v = f(t.v), d_o = f(t.d_o);
  std::vector<float> o(q.size()), lse(t.lse.size()), dq(q.size()), dk(k.size()), dv(v.size());
  Dense w = t;  // same problem, inputs rounded to float
  for (auto* x : {&w.q, &w.k, &w.v, &w.d_o})
    for (double& e : *x) e = float(e);
  w.forward(), w.backward();
  auto T = [&](std::vector<float>& x, int s, int h) { return HostTensorF::contiguous(x.data(), {2, s, h, 8}); };
  reference_forward(t.pr, T(q, 5, 4), T(k, 7, 2), T(v, 7, 2), T(o, 5, 4), HostTensorF::contiguous(lse.data(), {2, 4, 5}));
  reference_backward(t.pr, T(q, 5, 4), T(k, 7, 2), T(v, 7, 2), T(d_o, 5, 4), T(dq, 5, 4), T(dk, 7, 2), T(dv, 7, 2));
  for (size_t i = 0; i < o.size(); ++i) EXPECT_EQ(o[i], float(w.o[i]));
  for (size_t i = 0; i < lse.size(); ++i) EXPECT_EQ(lse[i], float(w.lse[i]));
  for (size_t i = 0; i < dk.size(); ++i) EXPECT_EQ(dk[i], float(w.dk[i]));
  for (size_t i = 0; i < dq.size(); ++i) EXPECT_EQ(dq[i], float(w.dq[i]));
}

}  // namespace
}  // namespace attnforge
