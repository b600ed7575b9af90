// The generated mask kinds keep the promises kernels rely on: a kind marked relative (masks.toml
// `relative = true`) answers the same for (q, k, Sq, Sk) and for the row offset apply_mask passes it,
// (q − k0 + Sk − Sq, k − k0, 0, 0), at every key tile origin k0 and every scalar setting.
#include <gtest/gtest.h>

#include "common/mask.hpp"
#include "masks.hpp"

namespace attnforge {
namespace {

template <class M>
int relative_mismatches(int& checked) {
  const int scalar_sets[][2] = {{-1, -1}, {0, 0}, {1, 0}, {3, 2}, {0, -1}, {-1, 4}, {7, 1}};
  int bad = 0;
  for (const auto& sc : scalar_sets) {
    const MaskScalars s{{sc[0], sc[1], 0, 0}};
    for (int sq : {1, 5, 13, 20})
      for (int sk : {1, 6, 13, 21})
        for (int k0 : {0, 3, 8, 17})
          for (int q = 0; q < sq; ++q)
            for (int k = 0; k < sk; ++k, ++checked)
              bad += M::visible(q, k, sq, sk, s) != M::visible(q - k0 + (sk - sq), k - k0, 0, 0, s);
  }
  return bad;
}

TEST(Masks, RelativeKindsDependOnTheDiagonalOffsetOnly) {
  int relative = 0;
  auto check = [&](auto tag) {
    using M = typename decltype(tag)::type;
    if constexpr (prim::kMaskRelative<M>) {
      ++relative;
      int checked = 0;
      EXPECT_EQ(relative_mismatches<M>(checked), 0) << M::kName;
      EXPECT_GT(checked, 10000) << M::kName;
    }
  };
  [&]<class... Ms>(TypeList<Ms...>) { (check(std::type_identity<Ms>{}), ...); }(generated::mask::MaskList{});
  // masks.toml marks causal and window; the test must not pass by finding none.
  EXPECT_GE(relative, 2);
  EXPECT_TRUE(prim::kMaskRelative<generated::mask::causal>);
  EXPECT_FALSE(prim::kMaskRelative<generated::mask::none>);
}

}  // namespace
}  // namespace attnforge
