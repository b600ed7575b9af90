// The generated mask kinds keep the promises kernels rely on: a kind marked relative (masks.toml
// `relative = true`) answers the same for (q, k, Sq, Sk) and for the row offset apply_mask passes it,
// (q − k0 + Sk − Sq, k − k0, 0, 0), at every key tile origin k0 and every scalar setting; and classify()
// agrees with visible() on every rectangle of rows and keys (the tile skips, v41's blind warps and v47's
// early warpgroup end take its kEmpty on faith).
#include <gtest/gtest.h>

#include <string_view>
#include <vector>

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

// classify(q_first, q_last, k_first, k_last) against visible() on every rectangle inside (Sq, Sk), through a
// 2-D prefix count of visible elements: kEmpty only where none is visible and kFull only where all are (the
// contract, every kind); with `exact`, also kEmpty wherever none is and kFull wherever all are and no tensor
// is read (the built-in kinds: a looser answer would cost speed, not correctness).
template <class M>
void classify_mismatches(bool exact, int& unsound, int& loose, int& checked) {
  const int scalar_sets[][2] = {{-1, -1}, {0, 0}, {1, 0}, {3, 2}, {0, -1}, {-1, 4}, {7, 1}};
  for (const auto& sc : scalar_sets) {
    const MaskScalars s{{sc[0], sc[1], 0, 0}};
    for (int sq : {1, 5, 13, 20})
      for (int sk : {1, 6, 13, 21}) {
        std::vector<int> cnt(size_t((sq + 1) * (sk + 1)), 0);  // cnt[(q, k)]: visible elements in [0, q) × [0, k)
        auto at = [&](int q, int k) -> int& { return cnt[size_t(q * (sk + 1) + k)]; };
        for (int q = 0; q < sq; ++q)
          for (int k = 0; k < sk; ++k)
            at(q + 1, k + 1) = at(q, k + 1) + at(q + 1, k) - at(q, k) + int(M::visible(q, k, sq, sk, s));
        for (int q0 = 0; q0 < sq; ++q0)
          for (int q1 = q0; q1 < sq; ++q1)
            for (int k0 = 0; k0 < sk; ++k0)
              for (int k1 = k0; k1 < sk; ++k1, ++checked) {
                const int n = at(q1 + 1, k1 + 1) - at(q0, k1 + 1) - at(q1 + 1, k0) + at(q0, k0);
                const int all = (q1 - q0 + 1) * (k1 - k0 + 1);
                const TileClass c = M::classify(q0, q1, k0, k1, sq, sk, s);
                unsound += (c == TileClass::kEmpty && n > 0) || (c == TileClass::kFull && (n < all || M::kHasTensor));
                loose += exact && ((n == 0 && c != TileClass::kEmpty) ||
                                   (n == all && !M::kHasTensor && c != TileClass::kFull));
              }
      }
  }
}

TEST(Masks, ClassifyAgreesWithVisibleOnEveryRectangle) {
  int kinds = 0;
  auto check = [&](auto tag) {
    using M = typename decltype(tag)::type;
    if constexpr (!M::kHasTensor) {
      ++kinds;
      const std::string_view name = M::kName;
      const bool exact = name == "none" || name == "causal" || name == "window";
      int unsound = 0, loose = 0, checked = 0;
      classify_mismatches<M>(exact, unsound, loose, checked);
      EXPECT_EQ(unsound, 0) << M::kName;
      EXPECT_EQ(loose, 0) << M::kName;
      EXPECT_GT(checked, 100000) << M::kName;
    }
  };
  [&]<class... Ms>(TypeList<Ms...>) { (check(std::type_identity<Ms>{}), ...); }(generated::mask::MaskList{});
  EXPECT_GE(kinds, 3);  // none, causal, window at least
}

}  // namespace
}  // namespace attnforge
