// UserVariants (GPU): the prefix-LM mask kind and head dim 80 that tests/configs/user_variants.toml
// adds by TOML alone run on the unfused backend and match the fp64 reference (whose mask predicate
// is the same generated functor). Runs in the `user_variants_build` tree; skips elsewhere, saying so.
#include <gtest/gtest.h>

#include "attention_case.hpp"
#include "gpu.hpp"
#include "variant_key.hpp"

namespace attnforge::test {
namespace {

TEST(UserVariants, PrefixLmHeadDim80MatchesTheReference) {
  if (mask_id_by_name("prefix_lm") < 0)
    GTEST_SKIP() << "built without tests/configs/user_variants.toml (the user_variants_build test builds it)";
  ATTNFORGE_REQUIRE_GPU();
  // (Sq, Sk, prefix_len): square, Sq < Sk and Sq > Sk (bottom-right alignment), prefix 0, inside, past Sk.
  const int shapes[][3] = {{113, 113, 17}, {37, 203, 64}, {203, 37, 5}, {64, 64, 0}, {40, 50, 90}};
  for (const auto& [sq, sk, prefix] : shapes) {
    Case c;
    c.batch = 2, c.seqlen_q = sq, c.seqlen_k = sk, c.heads_q = 4, c.heads_kv = 2, c.head_dim = 80;
    c.dtype = ATTNFORGE_BF16;
    c.mask = "prefix_lm";
    c.scalars = {prefix, -1, -1, -1};
    c.return_weights = true;
    EXPECT_TRUE(check_case(c, {.backend = ATTNFORGE_BACKEND_UNFUSED}));
  }
  Case none;  // the other kind of the config, same head dim
  none.seqlen_q = 129, none.seqlen_k = 77, none.head_dim = 80, none.dtype = ATTNFORGE_BF16;
  EXPECT_TRUE(check_case(none, {.backend = ATTNFORGE_BACKEND_UNFUSED}));
}

}  // namespace
}  // namespace attnforge::test
