// The test helpers every GPU test relies on (tests/common): the numerics rule itself (the oracle),
// case descriptions (test names and failure messages) and the standard odd-shape grid.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "attention_case.hpp"

namespace {

using attnforge::test::Case;
using attnforge::test::numerics_rule;
using attnforge::test::RuleCheck;
using attnforge::test::significand_bits;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(NumericsRule, PassesWithinTwiceTheBaselineError) {
  const std::vector<double> ref = {1.0, 2.0, 3.0}, lowp = {1.01, 2.0, 3.0};
  EXPECT_TRUE(numerics_rule({1.02, 2.0, 2.99}, ref, lowp, 2.0).ok);  // 0.02 ≤ 2·0.01 + 1e-5
  const RuleCheck c = numerics_rule({1.0, 2.0, 3.021}, ref, lowp, 2.0);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.failure, RuleCheck::Failure::too_far);
  EXPECT_EQ(c.at, 2u);
  EXPECT_NEAR(c.err, 0.021, 1e-12);
  EXPECT_NEAR(c.lowp_err, 0.01, 1e-12);
  EXPECT_NEAR(c.bound, 0.02001, 1e-12);
}

TEST(NumericsRule, ExactBaselineLeavesOnlyTheAbsoluteTolerance) {
  const std::vector<double> ref = {0.0, 1.0};
  EXPECT_TRUE(numerics_rule({0.0, 1.0 + 5e-6}, ref, ref, 3.0).ok);
  EXPECT_FALSE(numerics_rule({0.0, 1.0 + 2e-5}, ref, ref, 3.0).ok);
}

// A baseline that landed exactly on the reference still counts as half an ulp of the stored dtype
// at max|ref| (f16 at 1.0: 2^-11), so gradients may be 1.5 ulp off; 2 ulp still fail.
TEST(NumericsRule, HalfUlpFloorOfTheDtype) {
  const std::vector<double> ref = {0.25, 1.0};
  const double ulp = std::ldexp(1.0, -10);  // f16 at 1.0
  EXPECT_FALSE(numerics_rule({0.25, 1.0 + ulp}, ref, ref, 3.0).ok);  // no dtype: no floor
  const RuleCheck c = numerics_rule({0.25, 1.0 + ulp}, ref, ref, 3.0, 1e-5, significand_bits(ATTNFORGE_F16));
  EXPECT_TRUE(c.ok);
  EXPECT_EQ(c.lowp_floor, ulp / 2);
  EXPECT_EQ(c.lowp_err, ulp / 2);
  EXPECT_FALSE(numerics_rule({0.25, 1.0 + 2 * ulp}, ref, ref, 3.0, 1e-5, significand_bits(ATTNFORGE_F16)).ok);
  // A baseline error above the floor is used as measured; bf16's floor is 8 times f16's.
  EXPECT_EQ(numerics_rule(ref, ref, {0.25, 1.01}, 3.0, 1e-5, significand_bits(ATTNFORGE_F16)).lowp_err, 1.01 - 1.0);
  EXPECT_EQ(numerics_rule(ref, ref, ref, 3.0, 1e-5, significand_bits(ATTNFORGE_BF16)).lowp_floor, ulp * 4);
}

TEST(NumericsRule, NaNAlwaysFails) {
  const std::vector<double> ref = {1.0, 2.0}, lowp = {10.0, 20.0};  // a huge baseline error
  const RuleCheck c = numerics_rule({1.0, kNaN}, ref, lowp, 2.0);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.failure, RuleCheck::Failure::nan);
  EXPECT_EQ(c.at, 1u);
}

TEST(NumericsRule, InfiniteReferenceMustMatchExactly) {
  const std::vector<double> ref = {-kInf, 0.5}, lowp = {-kInf, 0.5};
  EXPECT_TRUE(numerics_rule({-kInf, 0.5}, ref, lowp, 2.0).ok);
  const RuleCheck c = numerics_rule({-1e30, 0.5}, ref, lowp, 2.0);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.failure, RuleCheck::Failure::infinity_mismatch);
  EXPECT_FALSE(numerics_rule({kNaN, 0.5}, ref, lowp, 2.0).ok);
  EXPECT_TRUE(numerics_rule({0.0, 0.5}, {0.0, 0.5}, {0.0, 0.5}, 2.0).ok);
}

TEST(NumericsRule, SizesMustAgree) {
  EXPECT_THROW(numerics_rule({1.0}, {1.0, 2.0}, {1.0, 2.0}, 2.0), std::invalid_argument);
}

TEST(AttentionCase, Describe) {
  Case c;
  c.batch = 2, c.seqlen_q = 113, c.seqlen_k = 203, c.heads_q = 8, c.heads_kv = 2, c.head_dim = 128;
  c.mask = "window";
  c.scalars = {17, 3, -1, -1};
  EXPECT_EQ(c.describe(), "bf16 B2 Sq113 Sk203 Hq8 Hkv2 D128 window(17,3)");
  Case v;
  v.dtype = ATTNFORGE_F16;
  v.varlen_q = {5, 0}, v.varlen_k = {3, 4};
  v.mask = "bias";
  v.bias = attnforge::test::BiasKind::boolean;
  v.bias_broadcast = {true, false, false, false};
  v.masked_rows = 2;
  v.backward = false;
  v.strided = true;
  EXPECT_EQ(v.describe(), "f16 varlen q{5,0} k{3,4} Hq1 Hkv1 D64 bias bool-bias[bcast1000] masked_rows2 strided fwd-only");
}

TEST(AttentionCase, OddShapeGrid) {
  const auto small = attnforge::test::odd_shape_cases(ATTNFORGE_BF16, 64, "window");
  const auto big = attnforge::test::odd_shape_cases(ATTNFORGE_BF16, 64, "bias", true);
  EXPECT_EQ(small.size(), 8u);
  EXPECT_EQ(big.size(), 11u);
  bool sq_ne_sk = false, gqa = false;
  for (const Case& c : small) {
    EXPECT_EQ(c.mask, "window");
    EXPECT_EQ(c.scalars[0], 17);
    sq_ne_sk |= c.seqlen_q != c.seqlen_k;
    gqa |= c.heads_q != c.heads_kv;
  }
  EXPECT_TRUE(sq_ne_sk);
  EXPECT_TRUE(gqa);
  for (const Case& c : big) EXPECT_NE(c.bias, attnforge::test::BiasKind::none);
}

}  // namespace
