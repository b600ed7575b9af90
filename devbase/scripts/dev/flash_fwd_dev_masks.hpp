// Dev-only stand-ins for generated/masks.hpp (same shape as the generator's output for the built-in
// kinds of codegen/variants/masks.toml), so the flash forward can be developed before the generator lands.
#pragma once
#include "common/mask.hpp"

namespace attnforge::devmask {

struct none {
  static constexpr int kId = 0; static constexpr const char* kName = "none";
  static constexpr int kNumScalars = 0; static constexpr bool kHasTensor = false;
  ATTNFORGE_HD static bool visible(int, int, int, int, const MaskScalars&) { return true; }
  ATTNFORGE_HD static TileClass classify(int, int, int, int, int, int, const MaskScalars&) { return TileClass::kFull; }
};
struct causal {
  static constexpr int kId = 1; static constexpr const char* kName = "causal";
  static constexpr int kNumScalars = 0; static constexpr bool kHasTensor = false;
  ATTNFORGE_HD static bool visible(int q_idx, int k_idx, int seqlen_q, int seqlen_k, const MaskScalars&) {
    return k_idx <= q_idx + seqlen_k - seqlen_q;
  }
  ATTNFORGE_HD static TileClass classify(int q_first, int q_last, int k_first, int k_last, int seqlen_q,
                                         int seqlen_k, const MaskScalars&) {
    if (k_first > q_last + seqlen_k - seqlen_q) return TileClass::kEmpty;
    if (k_last <= q_first + seqlen_k - seqlen_q) return TileClass::kFull;
    return TileClass::kPartial;
  }
};
struct window {
  static constexpr int kId = 2; static constexpr const char* kName = "window";
  static constexpr int kNumScalars = 2; static constexpr bool kHasTensor = false;
  ATTNFORGE_HD static bool visible(int q_idx, int k_idx, int seqlen_q, int seqlen_k, const MaskScalars& s) {
    const int left = s.v[0], right = s.v[1];
    return (left < 0 || k_idx >= q_idx + seqlen_k - seqlen_q - left) &&
           (right < 0 || k_idx <= q_idx + seqlen_k - seqlen_q + right);
  }
  ATTNFORGE_HD static TileClass classify(int q_first, int q_last, int k_first, int k_last, int seqlen_q,
                                         int seqlen_k, const MaskScalars& s) {
    const int left = s.v[0], right = s.v[1];
    if ((left >= 0 && k_last < q_first + seqlen_k - seqlen_q - left) ||
        (right >= 0 && k_first > q_last + seqlen_k - seqlen_q + right))
      return TileClass::kEmpty;
    if ((left < 0 || k_first >= q_last + seqlen_k - seqlen_q - left) &&
        (right < 0 || k_last <= q_first + seqlen_k - seqlen_q + right))
      return TileClass::kFull;
    return TileClass::kPartial;
  }
};
struct bias {
  static constexpr int kId = 3; static constexpr const char* kName = "bias";
  static constexpr int kNumScalars = 0; static constexpr bool kHasTensor = true;
  ATTNFORGE_HD static bool visible(int, int, int, int, const MaskScalars&) { return true; }
  ATTNFORGE_HD static TileClass classify(int, int, int, int, int, int, const MaskScalars&) { return TileClass::kPartial; }
};

}  // namespace attnforge::devmask
