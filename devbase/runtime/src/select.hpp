// Backend/variant selection for one call: explicit variant → explicit backend → ATTNFORGE_BACKEND
// → debug mode → tune cache → constexpr heuristic table (AUTO: within the memory budget). Every
// decision carries a reason.
#pragma once
#include <string>

#include "variant_key.hpp"

namespace attnforge {

// What the selector needs to know about a call (built from validated Params).
struct Problem {
  Direction direction;
  DType dtype;
  int batch, seqlen_q, seqlen_k, heads_q, heads_kv, head_dim;
  int mask_id;
  bool varlen;
  bool wants_weights;    // P requested: only unfused and fused can return it
  size_t memory_budget;  // 0 = unlimited
};

struct Selection {
  const VariantInfo* variant = nullptr;  // null ⇒ status/error say why
  attnforge_status status = ATTNFORGE_OK;
  std::string reason;  // why this variant (or the error message)
};

// requested: the explicit backend (AUTO = choose); variant_name: exact variant or null.
// p: the validated params (for workspace sizes against the memory budget).
// Exported (like select_reset below) for the host tests, the tuner and the overhead benchmark.
ATTNFORGE_API Selection select_variant(const Problem& problem, attnforge_backend requested,
                                       const char* variant_name, const Params& p);

// Decisions are memoized per call shape, and ATTNFORGE_BACKEND / ATTNFORGE_DEBUG / ATTNFORGE_LOG
// are read once. This forgets both (and reloads the tune cache): tests, and tools that change them.
ATTNFORGE_API void select_reset();
ATTNFORGE_API size_t select_memo_size();

}  // namespace attnforge
