// A TuneShape as C-API arguments: dense contiguous tensors (q (B, Sq, Hq, D), k/v (B, Sk, Hkv, D),
// LSE fp32 (B, Hq, Sq), bias (1, 1, Sq, Sk) broadcast), and the compiled variants that can run it.
#pragma once
#include <string>
#include <vector>

#include "attnforge/attnforge.h"
#include "grid.hpp"

namespace attnforge::tuner {

// Device pointers of one call (null where absent).
struct CallTensors {
  void *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  float* lse = nullptr;
  void *d_o = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr;
  void* bias = nullptr;
};

// Element counts of the tensors of a shape.
struct Extents {
  size_t q, kv, lse, bias;  // q, o, dO, dq: q; k, v, dk, dv: kv; bias (1, 1, Sq, Sk) or 0
};
Extents extents(const TuneShape& s);
bool mask_reads_tensor(const std::string& mask);  // "bias" (the built-in kind with a tensor)

// Arguments for s over t (backend AUTO, no variant). With `fake` the pointers are placeholders
// that are never dereferenced (dry run, estimates).
attnforge_args make_args(const TuneShape& s, const CallTensors& t);
attnforge_args make_fake_args(const TuneShape& s);

struct Candidate {
  std::string name;
  std::string backend;      // "unfused", "fused", "flash"
  bool runnable = false;    // attnforge_select_backend accepts the exact variant for this shape
  std::string why_not;      // its reason when not
  size_t workspace = 0;     // attnforge_workspace_size for this variant (with alignment slack)
};

// Every compiled variant whose name matches the shape's direction, dtype, head dim (or "any")
// and mask kind, asked of the library whether it can run the shape (Sk limits, weights...).
// `filter`: a glob on names ("" = all).
std::vector<Candidate> enumerate_candidates(const TuneShape& s, const std::string& filter);

}  // namespace attnforge::tuner
