// Per-backend estimates (availability, variant, workspace, device bytes, FLOPs, launches) and the
// C entry point attnforge_estimate(). The selector's memory-budget rule calls scratch_bytes().
#include "estimate.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "attnforge/attnforge.h"
#include "common/launch_checks.hpp"
#include "validate.hpp"
#include "workspace.hpp"

namespace attnforge {

namespace {

size_t elem_bytes(DType t) { return t == DType::f32 ? 4 : 2; }

std::string describe(const Problem& pr) {
  const char* m = mask_name(pr.mask_id);
  return std::string(to_string(pr.dtype)) + " " + to_string(pr.direction) + " head_dim " +
         std::to_string(pr.head_dim) + " mask " + (m ? m : "?");
}

// Bytes of the caller's tensors the call touches (dense extents, not strided spans).
size_t caller_tensor_bytes(const Problem& pr, const Params& p) {
  const size_t e = elem_bytes(pr.dtype);
  const size_t tq = size_t(std::max<int64_t>(p.total_q, 0));
  const size_t tk = size_t(std::max<int64_t>(p.total_k, 0));
  const size_t qo = tq * size_t(pr.heads_q) * size_t(pr.head_dim) * e;   // (total_q, Hq, D)
  const size_t kv = tk * size_t(pr.heads_kv) * size_t(pr.head_dim) * e;  // (total_k, Hkv, D)
  const size_t lse = tq * size_t(pr.heads_q) * sizeof(float);             // (Hq, total_q) fp32
  size_t bytes = 0;
  if (pr.direction == Direction::fwd) {
    bytes = qo /*q*/ + 2 * kv /*k, v*/ + qo /*o*/ + (p.lse ? lse : 0);
    if (pr.wants_weights)  // P (B, Hq, Sq, Sk)
      bytes += size_t(pr.batch) * size_t(pr.heads_q) * size_t(pr.seqlen_q) * size_t(pr.seqlen_k) * e;
  } else {
    bytes = 3 * qo /*q, o, dO*/ + 2 * kv /*k, v*/ + lse + qo /*dq*/ + 2 * kv /*dk, dv*/;
  }
  return bytes;
}

}  // namespace

bool variant_fits(const VariantInfo& v, const Problem& pr, std::string* why) {
  const VariantKey& k = v.key;
  std::string w;
  if (k.direction != pr.direction)
    w = std::string("it is ") + to_string(k.direction) + ", the call is " + to_string(pr.direction);
  else if (k.dtype != pr.dtype)
    w = std::string("it is ") + to_string(k.dtype) + ", the call is " + to_string(pr.dtype);
  else if (k.mask_id != pr.mask_id)
    w = std::string("its mask is ") + (mask_name(k.mask_id) ? mask_name(k.mask_id) : "?") +
        ", the call's is " + (mask_name(pr.mask_id) ? mask_name(pr.mask_id) : "?");
  else if (k.head_dim != kHeadDimAny && k.head_dim != pr.head_dim)
    w = "its head_dim is " + std::to_string(k.head_dim) + ", the call's is " + std::to_string(pr.head_dim);
  else if (max_seqlen_k(k) != 0 && pr.seqlen_k > max_seqlen_k(k))
    w = "it supports seqlen_k up to " + std::to_string(max_seqlen_k(k)) + ", got " +
        std::to_string(pr.seqlen_k);
  else if (pr.wants_weights && k.backend == Backend::flash)
    w = "flash cannot return the attention weights";
  else if (k.backend != Backend::unfused && exceeds_grid_yz(pr.heads_q, pr.batch))
    w = std::string("it ") + kGridLimits + ", got " + std::to_string(pr.heads_q) + " heads and " +
        std::to_string(pr.batch) + " sequences";
  else if (k.arch != 0 && current_cc_major() * 10 != k.arch)
    w = "it is built for sm_" + std::to_string(k.arch) + "a, the device is " +
        (current_cc_major() ? "sm_" + std::to_string(current_cc_major()) + "x" : std::string("absent"));
  if (why) *why = w;
  return w.empty();
}

const VariantInfo* first_fitting_variant(Backend b, const Problem& pr, std::string* why) {
  if (pr.wants_weights && b == Backend::flash) {
    if (why) *why = "flash cannot return the attention weights (weights was given)";
    return nullptr;
  }
  const auto cands = candidates(b, pr.direction, pr.dtype, pr.head_dim, pr.mask_id);
  if (cands.empty()) {
    if (why) *why = describe_missing(b, pr.direction, pr.dtype, pr.head_dim, pr.mask_id);
    return nullptr;
  }
  // None runs the call: name the Sk limit when that is what stops every candidate, else the first
  // other reason (e.g. the device, the grid limits).
  int largest = 0;
  std::string other;
  for (const VariantInfo* v : cands) {
    std::string w;
    if (variant_fits(*v, pr, &w)) return v;
    const int limit = max_seqlen_k(v->key);
    if (limit != 0 && pr.seqlen_k > limit)
      largest = std::max(largest, limit);
    else if (other.empty())
      other = std::string(v->name) + ": " + w;
  }
  if (why)
    *why = other.empty() ? std::string(to_string(b)) + " supports seqlen_k up to " + std::to_string(largest) +
                               " for " + describe(pr) + ", got seqlen_k " + std::to_string(pr.seqlen_k)
                         : std::string(to_string(b)) + " has no variant that runs " + describe(pr) + " (" + other + ")";
  return nullptr;
}

size_t scratch_bytes(const VariantInfo& v, const Problem& pr, const Params& p) {
  // Laid out as the C API allocates it: [kernel workspace, 256-aligned | temporary LSE], the
  // fp32 (B, Hq, Sq) LSE only for a forward without a caller LSE.
  const size_t kernel = workspace_bytes(v.key, p);
  size_t bytes = kernel ? (kernel + 255) / 256 * 256 : 0;
  if (pr.direction == Direction::fwd && p.lse == nullptr) bytes += temporary_lse_bytes(p);
  return bytes;
}

// Σ_{x=0}^{n−1} min(x, sk), n ≥ 0 (closed form, exact in 128 bits).
__int128 clamp_prefix(int64_t n, int64_t sk) {
  if (n <= 0) return 0;
  if (n <= sk + 1) return __int128(n) * (n - 1) / 2;
  return __int128(sk) * (sk + 1) / 2 + __int128(n - sk - 1) * sk;
}

// #{(i, j) ∈ [0, Sq) × [0, Sk) : j − i ≤ t}: row i contributes min(Sk, max(0, i + t + 1)).
__int128 pairs_at_most(int64_t t, int64_t sq, int64_t sk) {
  const int64_t u = t + 1;
  return clamp_prefix(std::max<int64_t>(0, u + sq), sk) - clamp_prefix(std::max<int64_t>(0, u), sk);
}

double visible_pairs(int mask_id, int seqlen_q, int seqlen_k, const MaskScalars& s) {
  const char* name = mask_name(mask_id);
  const std::string m = name ? name : "";
  if (seqlen_q <= 0 || seqlen_k <= 0) return 0;
  // Query i sees keys j with a ≤ j − i ≤ b, the diagonal at j − i = Sk − Sq (bottom-right):
  // visible = #{j − i ≤ b} − #{j − i ≤ a − 1}, in closed form (O(1) even for Sq near 2³¹).
  const int64_t sq = seqlen_q, sk = seqlen_k, off = sk - sq;
  auto band = [&](int64_t a, int64_t b) {
    return b < a ? 0.0 : double(pairs_at_most(b, sq, sk) - pairs_at_most(a - 1, sq, sk));
  };
  if (m == "causal") return band(-sq, off);
  if (m == "window") {
    const int left = s.v[0], right = s.v[1];
    return band(left < 0 ? -sq : off - left, right < 0 ? sk : off + right);
  }
  return double(sq) * double(sk);  // none, bias (every pair is computed), user-defined kinds (upper bound)
}

double attention_flops(const Problem& pr, const Params& p) {
  // Forward: S = Q·Kᵀ and O = P·V, 2·D FLOPs each per visible (q, k) pair ⇒ 4·D.
  // Backward: dV, dP, dQ, dK plus the recomputed S: 2.5× the forward (DESIGN.md's convention).
  const double pairs = visible_pairs(pr.mask_id, pr.seqlen_q, pr.seqlen_k, p.mask);
  const double fwd = 4.0 * pr.batch * double(pr.heads_q) * pr.head_dim * pairs;
  return pr.direction == Direction::fwd ? fwd : 2.5 * fwd;
}

int kernel_launches(const VariantKey& key, const Problem& pr, const Params& p) {
  (void)p;
  const bool fwd = key.direction == Direction::fwd;
  switch (key.backend) {
    case Backend::flash:
      // flash/fwd.cuh: one kernel writes O and LSE. flash/bwd.cuh: D = rowsum(dO ∘ O) (which also
      // zeroes the fp32 dQ accumulator), the main dK/dV/dQ kernel, dQ's scale + cast.
      return fwd ? 1 : 3;
    case Backend::fused:
      // fused/fwd.cuh: one kernel (P written from it when requested). fused/bwd.cuh: zero the fp32
      // dK/dV accumulators (memset), the main kernel, the dK/dV conversion; fp32 (fused/f32.cuh): zero
      // dk/dv, the main kernel.
      return fwd ? 1 : key.dtype == DType::f32 ? 2 : 3;
    case Backend::unfused: {
      // unfused/{fwd,bwd}.cuh run one strided-batched GEMM per query head of a KV group (G = Hq/Hkv)
      // per batch chunk (dense: one chunk; varlen: one per sequence). Forward: S = Q·Kᵀ, O = P·V
      // (2G GEMMs) + the softmax kernel. Backward: S, dV = Pᵀ·dO, dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q
      // (5G GEMMs) + P recompute, D = rowsum(dO ∘ O), 2 accumulator memsets, dS, 2 dK/dV stores.
      const int64_t g = pr.heads_kv > 0 ? pr.heads_q / pr.heads_kv : 1;
      const int64_t chunks = pr.varlen ? std::max(pr.batch, 1) : 1;
      const int64_t n = fwd ? 2 * g * chunks + 1 : 5 * g * chunks + 7;  // g, chunks < 2³¹: no overflow
      return int(std::min<int64_t>(n, std::numeric_limits<int>::max()));  // saturate the int field
    }
  }
  return 0;
}

BackendEstimate estimate_backend(Backend b, const Problem& pr, const Params& p, const VariantInfo* v) {
  BackendEstimate e;
  e.backend = b;
  e.tensor_bytes = caller_tensor_bytes(pr, p);
  e.flops = attention_flops(pr, p);
  std::string why;
  if (v == nullptr) v = first_fitting_variant(b, pr, &why);
  else if (!variant_fits(*v, pr, &why)) v = nullptr;
  if (v == nullptr) {
    e.reason = why;
    e.device_bytes = e.tensor_bytes;
    return e;
  }
  e.available = true;
  e.variant = v;
  e.workspace_bytes = workspace_bytes(v->key, p);
  e.scratch_bytes = scratch_bytes(*v, pr, p);
  e.device_bytes = e.tensor_bytes + e.scratch_bytes;
  e.kernel_launches = kernel_launches(v->key, pr, p);
  return e;
}

}  // namespace attnforge

// ---- C API ------------------------------------------------------------------------------------
namespace {

void copy_str(char* dst, size_t cap, const std::string& s) {
  if (cap == 0) return;
  const size_t n = std::min(cap - 1, s.size());
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

// Estimates need shapes, not memory: stand a fake (never dereferenced) address in for every
// absent tensor that validation requires, so that a caller can ask before allocating.
void fill_placeholders(attnforge_args& a, bool bwd) {
  void* const fake = reinterpret_cast<void*>(uintptr_t(1) << 40);
  attnforge_tensor* need[] = {&a.q, &a.k, &a.v, &a.o, &a.d_o, &a.dq, &a.dk, &a.dv, &a.lse};
  const int n = bwd ? 9 : 4;
  for (int i = 0; i < n; ++i)
    if (need[i]->data == nullptr && need[i]->rank > 0) need[i]->data = fake;
  if (a.weights.data == nullptr && a.weights.rank > 0) a.weights.data = fake;
  if (a.mask.bias.data == nullptr && a.mask.bias.rank > 0) a.mask.bias.data = fake;
}

}  // namespace

extern "C" ATTNFORGE_API attnforge_status attnforge_estimate(const attnforge_args* args, int is_backward,
                                                             attnforge_backend_estimate* out, int capacity,
                                                             int* count) {
  using namespace attnforge;
  try {
    if (count) *count = 0;
    if (args == nullptr || out == nullptr || capacity < 0) return ATTNFORGE_INVALID_ARGUMENT;
    attnforge_args a = *args;
    const bool bwd = is_backward != 0;
    fill_placeholders(a, bwd);
    ValidatedCall call;
    std::string error;
    const attnforge_status st = validate_args(a, bwd ? Direction::bwd : Direction::fwd, call, error);
    if (st != ATTNFORGE_OK) {
      if (capacity > 0) {
        std::memset(&out[0], 0, sizeof out[0]);
        copy_str(out[0].reason, sizeof out[0].reason, error);
      }
      return st;
    }
    call.params.num_sms = current_device_sms();  // as the C API sizes workspaces (0 without a device)
    // The same numbers the selector sees: a forward without a caller LSE has p.lse == null here
    // (the C API points it at a temporary only after selection), so scratch counts that temporary.
    const Backend order[] = {Backend::unfused, Backend::fused, Backend::flash};
    int n = 0;
    for (Backend b : order) {
      if (n >= capacity) break;
      // The variant the selector runs when this backend is asked for (its fastest tuned tile, else
      // the heuristic's tile order), so that the estimate describes what would really run.
      const Selection sel = select_variant(call.problem, attnforge_backend(int(b)), nullptr, call.params);
      BackendEstimate e;
      if (sel.variant != nullptr) {
        e = estimate_backend(b, call.problem, call.params, sel.variant);
      } else {
        e = estimate_backend(b, call.problem, call.params);
        e.available = false;
        e.variant = nullptr;
        e.reason = sel.reason;
        e.workspace_bytes = e.scratch_bytes = e.kernel_launches = 0;
        e.device_bytes = e.tensor_bytes;
      }
      attnforge_backend_estimate& o = out[n++];
      std::memset(&o, 0, sizeof o);
      o.backend = attnforge_backend(int(b));
      o.available = e.available ? 1 : 0;
      copy_str(o.variant, sizeof o.variant, e.variant ? e.variant->name : "");
      copy_str(o.reason, sizeof o.reason, e.reason);
      o.workspace_bytes = e.workspace_bytes;
      o.scratch_bytes = e.scratch_bytes;
      o.device_bytes = e.device_bytes;
      o.flops = e.flops;
      o.kernel_launches = e.kernel_launches;
    }
    if (count) *count = n;
    return ATTNFORGE_OK;
  } catch (...) {
    return ATTNFORGE_INTERNAL;
  }
}
