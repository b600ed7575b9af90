// One attention test case end to end: random inputs → the C API (forward, then backward) on the
// GPU → compared with the fp64 CPU reference under DESIGN.md's numerics rule. Every GPU test of
// every backend is a list of Cases.
//
// How to write a GPU test:
//
//   #include "attention_case.hpp"
//   using attnforge::test::Case;
//
//   TEST(Flash, OddShapes) {
//     ATTNFORGE_REQUIRE_GPU();                       // skips visibly without a device
//     for (int s : {1, 3, 113, 203}) {
//       Case c;                                      // defaults: B=1, Hq=Hkv=1, D=64, bf16, no mask
//       c.batch = 2; c.seqlen_q = s; c.seqlen_k = 2 * s + 1; c.heads_q = 8; c.heads_kv = 2;
//       c.head_dim = 128; c.mask = "causal";
//       EXPECT_TRUE(attnforge::test::check_case(c, {.backend = ATTNFORGE_BACKEND_FLASH}));
//     }
//   }
//
// check_case returns a gtest AssertionResult whose failure message holds the case (shape, dtype,
// mask, seed) and, per tensor, max|out − ref|, the low-precision baseline's max|lowp − ref| and the
// allowed bound. Set ATTNFORGE_TEST_SEED=<n> to rerun one seed. A case whose variant this build
// lacks (a filtered or CI build) marks the test SKIPPED with the library's message, never passed.
//
// What it checks:
//   forward:  O (and P when return_weights) pass iff max|out − ref| ≤ 2·max|lowp − ref| + 1e-5, where
//             ref is the fp64 reference of the same (dtype-rounded) inputs and lowp the CPU emulation
//             of the plain low-precision implementation (reference_lowp_forward);
//             LSE: same −inf positions as the reference, and the same rule on the finite entries;
//             NaN anywhere (outputs are poisoned with 0xFF ⇒ NaN before each run) fails.
//   backward: dQ, dK, dV with factor 3, from the GPU's own O and LSE.
//   Fully masked rows must give O = 0 exactly, LSE = −inf and zero gradients (the reference does,
//   and the rule with a zero baseline error leaves only 1e-5 of slack).
//   RunOptions::workspace also exercises caller-provided scratch (exact, misaligned, too small).
#pragma once
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "attnforge/attnforge.h"
#include "device_buffer.hpp"
#include "gpu.hpp"

namespace attnforge::test {

// How the case feeds the "bias" mask kind (or any kind that reads a tensor).
enum class BiasKind {
  none,          // no tensor
  additive,      // random normals, dtype of q
  additive_f32,  // random normals, f32
  boolean,       // bool visibility, ~80% visible
};

struct Case {
  // ---- shape (dense: q (B, Sq, Hq, D), k/v (B, Sk, Hkv, D)) ----
  int batch = 1;
  int seqlen_q = 16, seqlen_k = 16;
  int heads_q = 1, heads_kv = 1;
  int head_dim = 64;
  attnforge_dtype dtype = ATTNFORGE_BF16;

  // ---- varlen: per-sequence lengths; non-empty ⇒ packed (total, H, D) with cu_seqlens, and
  //      batch / seqlen_q / seqlen_k are taken from these (max lengths). Zero lengths are allowed.
  std::vector<int> varlen_q, varlen_k;

  // ---- mask ----
  std::string mask = "none";                         // "none", "causal", "window", "bias", or a TOML kind
  std::array<int64_t, 4> scalars = {-1, -1, -1, -1};  // window: {left, right}
  BiasKind bias = BiasKind::none;                    // required for "bias"
  std::array<bool, 4> bias_broadcast = {false, false, false, false};  // (B, Hq, Sq, Sk) dims of size 1
  int masked_rows = 0;  // with a bias: the first rows of every (b, h) see no key (fully masked)

  // ---- call options ----
  float scale = 0.0f;           // 0 ⇒ 1/sqrt(D)
  bool backward = true;         // also run and check the backward
  bool return_weights = false;  // forward also returns P (unfused, fused)
  bool pass_lse = true;         // pass an LSE to forward (false: the library supplies a temporary)
  bool strided = false;         // q/k/v/o/d_o/dq/dk/dv with padded rows (non-contiguous, last dim unit)
  uint64_t seed = 0;            // 0 ⇒ derived from the case description

  std::string describe() const;  // "bf16 B2 Sq113 Sk203 Hq8 Hkv2 D128 causal varlen ..."
};
std::ostream& operator<<(std::ostream& os, const Case& c);  // for TEST_P parameter names

struct RunOptions {
  attnforge_backend backend = ATTNFORGE_BACKEND_UNFUSED;
  const char* variant = nullptr;   // exact variant name (overrides backend)
  const char* backward_variant = nullptr;  // exact backward variant (the forward keeps variant/backend)
  double forward_factor = 2.0;     // the numerics rule's factors
  double gradient_factor = 3.0;
  double abs_tol = 1e-5;
  bool deterministic = false;
  void* stream = nullptr;          // cudaStream_t
  // Scratch memory: the library's own (cudaMallocAsync), or a caller buffer sized by
  // attnforge_workspace_size (exact / starting one byte past an aligned address / half the size,
  // which the library must refuse to use and allocate instead).
  enum class Workspace { library, exact, misaligned, too_small } workspace = Workspace::library;
};

// DESIGN.md's numerics rule on flat arrays: ok iff no NaN in out, out == ref wherever ref is ±inf
// (−inf LSE of fully masked rows), and max|out − ref| ≤ factor·max|lowp − ref| + abs_tol over the
// finite entries. Usable for any custom comparison (bench cross-checks, Python-free tools).
//
// With `significand_bits` (the stored dtype's: significand_bits(dtype)) the baseline error counts as
// at least half an ulp of that dtype at max|ref|: the plain implementation rounds its own outputs,
// so over enough elements its max error reaches that. A tensor with only a few independent
// roundings (Sq = 1, a handful of visible keys: one dS per key makes every dK element of that key
// one draw) can have a baseline that happened to land within a fraction of an ulp, and a correct
// kernel then fails by luck (the unfused f16 sweep cases of 2026-11-30: 1.1 and 2.2 ulp against a
// baseline of 0.33 and 0.45). The choice is ours: DESIGN.md is silent on tiny tensors.
struct RuleCheck {
  enum class Failure { none, nan, infinity_mismatch, too_far };
  bool ok = true;
  double err = 0.0;         // max|out − ref|
  double lowp_err = 0.0;    // max|lowp − ref|, at least lowp_floor
  double lowp_floor = 0.0;  // half an ulp of the dtype at max|ref| (0 without significand_bits)
  double bound = 0.0;       // factor·lowp_err + abs_tol
  Failure failure = Failure::none;
  size_t at = 0;            // element of the (first) failure
};
RuleCheck numerics_rule(const std::vector<double>& out, const std::vector<double>& ref,
                        const std::vector<double>& lowp, double factor, double abs_tol = 1e-5,
                        int significand_bits = 0);
// Significand bits of a stored element type, the implicit one included: f32 24, f16 11, bf16 8.
int significand_bits(attnforge_dtype t);
// One log line for check `c` of tensor `name` of shape (sizes[0], …, sizes[rank − 1]), whose logical
// elements out and ref hold: the errors, the bound, and what failed where.
void log_rule(std::ostream& log, const char* name, const RuleCheck& c, const std::vector<double>& out,
              const std::vector<double>& ref, int rank, const int64_t* sizes);

// Whether status `st` (with attnforge_last_error()) is a refusal because the build lacks the variant
// (describe_missing's "X has no ...; built: ...", or "X has no compiled variants in this build" under
// a variant filter): check_case and the tests report that as SKIPPED, never as a pass or a failure.
bool variant_not_built(attnforge_status st);

// Runs the case through the C API and checks it; see the top of this file.
::testing::AssertionResult check_case(const Case& c, const RunOptions& opt = {});

// check_case over seeds 1 … n of one shape (make_case(seed) returns the Case, its seed set): how many
// failed, and the first failure's message.
struct SeedsOutcome {
  int failed = 0;
  std::string first;
};
template <class MakeCase>
SeedsOutcome check_seeds(uint64_t n, MakeCase make_case, const RunOptions& opt) {
  SeedsOutcome out;
  for (uint64_t seed = 1; seed <= n; ++seed) {
    const ::testing::AssertionResult r = check_case(make_case(seed), opt);
    if (!r && out.failed++ == 0) out.first = r.message();
  }
  return out;
}

// Expects the call to be rejected: returns success iff forward (or backward when the case's
// backward is set) returns `status` and attnforge_last_error() contains `message_part`.
::testing::AssertionResult check_case_fails(const Case& c, const RunOptions& opt, attnforge_status status,
                                            const std::string& message_part);

// The standard odd-shape grid of issue 2 (Sq, Sk ∈ {1, 3, 113, 203, 1023, 1024}, Sq ≠ Sk pairs,
// GQA), for one dtype, head dim and mask; `big` adds the 1023/1024 lengths.
std::vector<Case> odd_shape_cases(attnforge_dtype dtype, int head_dim, const std::string& mask, bool big = false);

}  // namespace attnforge::test
