// UserVariants: what tests/configs/user_variants.toml adds by TOML alone — unfused head dim 80 and
// the prefix-LM mask kind — is in the compiled table. Runs in the `user_variants_build` tree.
#include <gtest/gtest.h>

#include "variant_key.hpp"

namespace attnforge {
namespace {

TEST(UserVariants, PrefixLmMaskAndHeadDim80AreInTheTable) {
  const int id = mask_id_by_name("prefix_lm");
  if (id < 0) GTEST_SKIP() << "built without tests/configs/user_variants.toml (the user_variants_build test builds it)";
  EXPECT_EQ(mask_num_scalars(id), 1);
  EXPECT_FALSE(mask_has_tensor(id));
  for (Direction d : {Direction::fwd, Direction::bwd}) {
    const auto c = candidates(Backend::unfused, d, DType::bf16, 80, id);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(std::string(c[0]->name), std::string("unfused_") + to_string(d) + "_bf16_hd80_prefix_lm_w4");
  }
  // Only head dim 80 was asked for: 64 is missing, and the message lists what exists.
  EXPECT_TRUE(candidates(Backend::unfused, Direction::fwd, DType::bf16, 64, id).empty());
  const std::string msg = describe_missing(Backend::unfused, Direction::fwd, DType::bf16, 64, id);
  EXPECT_NE(msg.find("built: 80"), std::string::npos) << msg;
}

TEST(UserVariants, PrefixLmPredicate) {
  const int id = mask_id_by_name("prefix_lm");
  if (id < 0) GTEST_SKIP() << "built without tests/configs/user_variants.toml (the user_variants_build test builds it)";
  const MaskScalars s{{3, 0, 0, 0}};  // prefix_len = 3
  EXPECT_TRUE(mask_visible(id, 0, 2, 8, 8, s));   // inside the prefix, ahead of the query
  EXPECT_FALSE(mask_visible(id, 0, 3, 8, 8, s));  // past the prefix and the diagonal
  EXPECT_TRUE(mask_visible(id, 5, 5, 8, 8, s));   // causal part
  EXPECT_FALSE(mask_visible(id, 5, 6, 8, 8, s));
}

}  // namespace
}  // namespace attnforge
