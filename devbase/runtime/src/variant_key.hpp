// VariantKey: the runtime twin of a Variant<...> type, and the compiled-variant table's interface.
// The table itself is built at compile time with Boost.Hana in dispatch.cpp (the only TU that
// sees Hana); everything else in the runtime talks to it through these functions.
#pragma once
#include <cuda_runtime_api.h>

#include <span>
#include <string>
#include <vector>

#include "common/params.hpp"
#include "common/variant.hpp"

namespace attnforge {

struct VariantKey {
  Backend backend;
  Direction direction;
  DType dtype;
  int head_dim;  // kHeadDimAny (0) for a variant that serves any head dim
  int mask_id;   // index into the generated MaskList
  int block_m, block_n, warps, stages;  // the Tile<...>; 0 where the backend has no such knob
  int arch;                             // 0: any GPU; 90: sm_90a only (name suffix "_sm90a")
  friend constexpr bool operator==(const VariantKey&, const VariantKey&) = default;
};

using LaunchFn = attnforge_status (*)(const Params&, cudaStream_t);

struct VariantInfo {
  VariantKey key;
  const char* name;  // canonical name, e.g. "flash_fwd_bf16_hd128_causal_m128n64w4s2"
  LaunchFn launch;
};

// Every compiled variant, in generator order (tile order within a combination = preference).
std::span<const VariantInfo> all_variants();
const VariantInfo* find_variant(std::string_view name);

// Variants that could run a call of (backend, direction, dtype, head_dim, mask), best-first:
// exact head dim before kHeadDimAny. Empty if none.
std::vector<const VariantInfo*> candidates(Backend b, Direction d, DType t, int head_dim,
                                           int mask_id);

// "flash has no head_dim 80 for bf16 (fwd, causal); built: 64, 96, 128" — what exists instead.
std::string describe_missing(Backend b, Direction d, DType t, int head_dim, int mask_id);

// The mask kinds compiled in (from generated/masks.hpp), by id.
int mask_count();
int mask_id_by_name(std::string_view name);  // -1 if unknown
const char* mask_name(int id);
int mask_num_scalars(int id);
bool mask_has_tensor(int id);
// Host-side predicate of a mask kind (the CPU reference and tests use it).
bool mask_visible(int id, int q_idx, int k_idx, int seqlen_q, int seqlen_k, const MaskScalars& s);

// Largest Sk a variant supports (fused: its on-chip key row, tile block_n); 0 = unlimited.
int max_seqlen_k(const VariantKey& key);

// Hash of generated/manifest.json the library was built from (tune-cache metadata).
const char* manifest_hash();

const char* to_string(Backend b);
const char* to_string(Direction d);
const char* to_string(DType t);

}  // namespace attnforge
