// The numerics gate of attnforge-tune: before a variant is timed it must pass DESIGN.md's rule
// (max|out − ref| ≤ 2·max|lowp − ref| + 1e-5 forward, factor 3 for dQ/dK/dV) on a reduced copy of
// the shape, against the team's CPU reference (attnforge/reference.hpp). A variant that fails is
// reported and never chosen.
//
// Reduced copy (the full shapes are far too big for an fp64 CPU reference): B = 1, at most 2 KV
// heads with at most 2 query heads each (GQA kept when the shape has it), Sq ≤ 192 and Sk cut the
// same way (Sq = Sk kept equal; Sk > Sq keeps ≥ 64 extra keys, up to 256 for decode-like shapes),
// and the same dtype, head dim, mask kind and mask scalars — the same compiled variant runs it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "grid.hpp"

namespace attnforge::tuner {

TuneShape reduced_shape(const TuneShape& s);

struct CheckResult {
  bool pass = false;
  std::string detail;  // "O: max err 3.1e-03 <= bound 6.2e-03" per tensor, or what went wrong
};

// Inputs, fp64 reference and low-precision baseline of one reduced shape, computed once and
// shared by every candidate of that shape.
class NumericsCase {
 public:
  NumericsCase(const TuneShape& full, uint64_t seed);
  ~NumericsCase();
  const TuneShape& shape() const { return shape_; }
  // Runs `variant` on the GPU (outputs poisoned first) and applies the rule.
  CheckResult check(const std::string& variant);

 private:
  struct Data;
  TuneShape shape_;
  std::unique_ptr<Data> d_;
};

}  // namespace attnforge::tuner
