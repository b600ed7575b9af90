// exp2_fma (common/exp2_fma.hpp), the FMA-pipe 2^x a softmax may run beside ex2.approx: relative error
// against std::exp2 in double over the whole softmax range, exact 0 where ex2.approx.ftz gives 0.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "common/exp2_fma.hpp"

namespace {

using attnforge::prim::exp2_fma;

double rel_err(float x) {
  const double want = std::exp2(double(x));
  return std::abs(double(exp2_fma(x)) - want) / want;
}

// Every float of the softmax range [−125, 1] at 2^-12 spacing, the integer and half-integer edges of
// the rounding, and random points: within 2.5e-7 (ex2.approx.f32 is specified to 2 ulp, ~2.4e-7).
TEST(Exp2Fma, RelativeErrorOverTheSoftmaxRange) {
  double worst = 0.0;
  float at = 0.f;
  for (float x = -125.f; x <= 1.f; x += 1.f / 4096)
    if (const double e = rel_err(x); e > worst) worst = e, at = x;
  for (int n = -125; n <= 1; ++n)
    for (float d : {-0.5f, -0.25f, 0.f, 0.25f, 0.5f}) {
      const float x = float(n) + d;
      if (x < -125.f || x > 1.f) continue;
      const float edges[] = {std::nextafter(x, -1e9f), x, std::nextafter(x, 1e9f)};
      for (float y : edges)
        if (y >= -125.f)
          if (const double e = rel_err(y); e > worst) worst = e, at = y;
    }
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u(-125.f, 1.f);
  for (int i = 0; i < 1000000; ++i) {
    const float x = u(rng);
    if (const double e = rel_err(x); e > worst) worst = e, at = x;
  }
  EXPECT_LT(worst, 2.5e-7) << "at x = " << at;
}

TEST(Exp2Fma, ExactPowersAndFlushToZero) {
  EXPECT_EQ(exp2_fma(0.f), 1.f);
  EXPECT_EQ(exp2_fma(-1.f), 0.5f);
  EXPECT_EQ(exp2_fma(-100.f), std::ldexp(1.f, -100));
  EXPECT_EQ(exp2_fma(-125.f), std::ldexp(1.f, -125));
  EXPECT_EQ(exp2_fma(std::nextafter(-125.f, -200.f)), 0.f);
  EXPECT_EQ(exp2_fma(-126.5f), 0.f);
  EXPECT_EQ(exp2_fma(-std::numeric_limits<float>::infinity()), 0.f);
  EXPECT_EQ(exp2_fma(-1e30f), 0.f);
  // Results never go negative or above 2^x's neighbourhood (the exponent add cannot wrap).
  for (float x = -125.f; x <= 1.f; x += 0.125f) EXPECT_GT(exp2_fma(x), 0.f) << x;
}

}  // namespace
