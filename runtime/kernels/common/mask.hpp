// The mask vocabulary every kernel speaks: runtime scalars, tile classes, and the concept a
// generated mask kind (generated/masks.hpp, from the [mask.*] tables of the variant TOML) models.
#pragma once
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "hd.hpp"

namespace attnforge {

constexpr int kMaxMaskScalars = 4;

// Runtime scalars of a mask kind, in the order its TOML entry names them (window: left, right).
struct MaskScalars {
  int v[kMaxMaskScalars];  // the C API's int64 values, range-checked to int by validation
};

// Whether a mask kind can leave a tile inside the sequence empty, so that row blocks (forward) and key
// tiles (backward) differ in work: every kind but "none" (causal, windows; bias kinds are classified per
// call). Kernels ask through prim::kMaskEmptiesTiles<Mask>; host code by name (runtime/src/workspace_flash.cpp).
constexpr bool mask_empties_tiles(std::string_view mask_name) { return mask_name != "none"; }

// What a (q-rows × k-cols) tile looks like under a mask: kernels skip kEmpty tiles entirely and
// evaluate the predicate per element only on kPartial ones.
enum class TileClass : int { kEmpty = 0, kPartial = 1, kFull = 2 };

// A generated mask kind M provides (all ATTNFORGE_HD, so kernels and the CPU reference share it):
//   static constexpr int kId;                 // index in generated::MaskList
//   static constexpr const char* kName;       // canonical name, e.g. "causal"
//   static constexpr int kNumScalars;         // runtime scalars it reads
//   static constexpr bool kHasTensor;         // reads Params::bias (additive or boolean)
//   static constexpr bool kRelative;          // visible() depends on k_idx − q_idx − (seqlen_k − seqlen_q)
//                                             // and the scalars only (optional; absent = false)
//   static bool visible(int q_idx, int k_idx, int seqlen_q, int seqlen_k, const MaskScalars&);
//   static TileClass classify(int q_first, int q_last, int k_first, int k_last,
//                             int seqlen_q, int seqlen_k, const MaskScalars&);
//     (inclusive index ranges; kFull only if every element is visible and no tensor is read)
// Indices are positions inside one sequence; causal alignment is bottom-right (DESIGN.md).

namespace prim {
// M::kRelative where the kind declares it (every generated kind does; hand-written dev kinds may not).
template <class M, class = void>
inline constexpr bool kMaskRelative = false;
template <class M>
inline constexpr bool kMaskRelative<M, std::void_t<decltype(M::kRelative)>> = M::kRelative;
}  // namespace prim

}  // namespace attnforge
