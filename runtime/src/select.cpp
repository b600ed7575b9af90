// Variant selection (version 1): an ordered list of rules, each either deciding (a variant or an
// error, with its reason) or passing to the next. Explicit variant → explicit backend →
// ATTNFORGE_BACKEND → ATTNFORGE_DEBUG → [tune cache, memory budget: to be inserted] → heuristic table.
#include "select.hpp"

#include <array>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace attnforge {

namespace {

struct SelectContext {
  const Problem& problem;
  attnforge_backend requested;
  const char* variant_name;
  const Params& params;
};

// A rule decides (returns a Selection, success or error) or passes (nullopt).
using Rule = std::optional<Selection> (*)(const SelectContext&);

Selection ok(const VariantInfo* v, std::string reason) { return Selection{v, ATTNFORGE_OK, std::move(reason)}; }
Selection error(attnforge_status s, std::string message) { return Selection{nullptr, s, std::move(message)}; }

std::string describe(const Problem& pr) {
  return std::string(to_string(pr.dtype)) + " " + to_string(pr.direction) + " head_dim " +
         std::to_string(pr.head_dim) + " mask " + (mask_name(pr.mask_id) ? mask_name(pr.mask_id) : "?");
}

bool fits_seqlen(const VariantInfo& v, const Problem& pr) {
  const int limit = max_seqlen_k(v.key);
  return limit == 0 || pr.seqlen_k <= limit;
}

// The first candidate of backend b that can run the problem, or an error saying why none can.
Selection pick_backend(Backend b, const Problem& pr, const std::string& why) {
  if (pr.wants_weights && b == Backend::flash) {
    return error(ATTNFORGE_UNSUPPORTED,
                 "flash cannot return the attention weights (weights was given); use backend unfused or fused");
  }
  const auto cands = candidates(b, pr.direction, pr.dtype, pr.head_dim, pr.mask_id);
  if (cands.empty()) {
    return error(ATTNFORGE_UNSUPPORTED, describe_missing(b, pr.direction, pr.dtype, pr.head_dim, pr.mask_id));
  }
  int largest = 0;
  const VariantInfo* largest_v = nullptr;
  for (const VariantInfo* v : cands) {
    if (fits_seqlen(*v, pr)) return ok(v, why + ": " + v->name);
    if (max_seqlen_k(v->key) > largest) largest = max_seqlen_k(v->key), largest_v = v;
  }
  return error(ATTNFORGE_UNSUPPORTED, std::string(to_string(b)) + " supports seqlen_k up to " +
                                          std::to_string(largest) + " for " + describe(pr) + " (" + largest_v->name +
                                          "), got seqlen_k " + std::to_string(pr.seqlen_k));
}

std::optional<Backend> parse_backend(std::string_view s) {
  if (s == "unfused") return Backend::unfused;
  if (s == "fused") return Backend::fused;
  if (s == "flash") return Backend::flash;
  return std::nullopt;
}

// ---- rule 1: an exact variant name (autotuner, tests) ------------------------------------------
std::optional<Selection> rule_explicit_variant(const SelectContext& c) {
  if (c.variant_name == nullptr || c.variant_name[0] == '\0') return std::nullopt;
  const VariantInfo* v = find_variant(c.variant_name);
  const std::string name = c.variant_name;
  if (v == nullptr) {
    return error(ATTNFORGE_INVALID_ARGUMENT,
                 "unknown variant '" + name + "' (attnforge_variant_name lists the " +
                     std::to_string(all_variants().size()) + " compiled variants)");
  }
  const Problem& pr = c.problem;
  const VariantKey& k = v->key;
  std::string why;
  if (k.direction != pr.direction) why = std::string("it is ") + to_string(k.direction) + ", the call is " + to_string(pr.direction);
  else if (k.dtype != pr.dtype) why = std::string("it is ") + to_string(k.dtype) + ", the call is " + to_string(pr.dtype);
  else if (k.mask_id != pr.mask_id) why = std::string("its mask is ") + mask_name(k.mask_id) + ", the call's is " + mask_name(pr.mask_id);
  else if (k.head_dim != kHeadDimAny && k.head_dim != pr.head_dim)
    why = "its head_dim is " + std::to_string(k.head_dim) + ", the call's is " + std::to_string(pr.head_dim);
  else if (!fits_seqlen(*v, pr))
    why = "it supports seqlen_k up to " + std::to_string(max_seqlen_k(k)) + ", got " + std::to_string(pr.seqlen_k);
  else if (pr.wants_weights && k.backend == Backend::flash)
    why = "flash cannot return the attention weights";
  if (!why.empty()) return error(ATTNFORGE_UNSUPPORTED, "variant '" + name + "' cannot run this call: " + why);
  return ok(v, "variant requested explicitly: " + name);
}

// ---- rule 2: an explicit backend in the args ---------------------------------------------------
std::optional<Selection> rule_explicit_backend(const SelectContext& c) {
  switch (c.requested) {
    case ATTNFORGE_BACKEND_AUTO: return std::nullopt;
    case ATTNFORGE_BACKEND_UNFUSED:
    case ATTNFORGE_BACKEND_FUSED:
    case ATTNFORGE_BACKEND_FLASH: {
      const Backend b = Backend(int(c.requested));
      return pick_backend(b, c.problem, std::string("backend ") + to_string(b) + " requested explicitly");
    }
  }
  return error(ATTNFORGE_INVALID_ARGUMENT,
               "expected backend to be one of AUTO, UNFUSED, FUSED, FLASH, got " + std::to_string(int(c.requested)));
}

// ---- rule 3: ATTNFORGE_BACKEND=unfused|fused|flash (auto or unset: pass) ------------------------
std::optional<Selection> rule_env_backend(const SelectContext& c) {
  const char* env = std::getenv("ATTNFORGE_BACKEND");
  if (env == nullptr || env[0] == '\0' || std::string_view(env) == "auto") return std::nullopt;
  const auto b = parse_backend(env);
  if (!b) {
    return error(ATTNFORGE_INVALID_ARGUMENT,
                 std::string("expected ATTNFORGE_BACKEND to be one of auto, unfused, fused, flash, got '") + env + "'");
  }
  return pick_backend(*b, c.problem, std::string("ATTNFORGE_BACKEND=") + env);
}

// ---- rule 4: ATTNFORGE_DEBUG=1 → unfused (every intermediate is a plain tensor) -----------------
std::optional<Selection> rule_debug(const SelectContext& c) {
  const char* env = std::getenv("ATTNFORGE_DEBUG");
  if (env == nullptr || std::string_view(env) != "1") return std::nullopt;
  return pick_backend(Backend::unfused, c.problem, "ATTNFORGE_DEBUG=1 selects unfused");
}

// ---- rule 6: the heuristic table ------------------------------------------------------------------
// One row per situation; backends tried left to right, the first with a compiled candidate that
// fits (fused: Sk within its on-chip key row) wins.
struct HeuristicRow {
  bool wants_weights;
  std::array<Backend, 3> order;
  int count;
  const char* why;
};
constexpr HeuristicRow kHeuristic[] = {
    // P requested: flash never materialises P. fused writes it from the same kernel while the key
    // row fits on chip; unfused always can (P is its intermediate anyway).
    {true, {Backend::fused, Backend::unfused, Backend::unfused}, 2, "attention weights requested"},
    // Default: flash is O(N) memory and the fastest wherever it is built; fused when flash lacks
    // this key and the key row fits on chip (short Sk); unfused runs everything else.
    {false, {Backend::flash, Backend::fused, Backend::unfused}, 3, "heuristic"},
};

std::optional<Selection> rule_heuristic(const SelectContext& c) {
  const Problem& pr = c.problem;
  for (const HeuristicRow& row : kHeuristic) {
    if (row.wants_weights != pr.wants_weights) continue;
    std::string skipped;  // why earlier backends of the row were passed over
    for (int i = 0; i < row.count; ++i) {
      Selection s = pick_backend(row.order[i], pr, std::string(row.why) + ": " + to_string(row.order[i]));
      if (s.variant != nullptr) {
        if (!skipped.empty()) s.reason += " (" + skipped + ")";
        return s;
      }
      skipped += (skipped.empty() ? "" : "; ") + s.reason;
    }
    return error(ATTNFORGE_UNSUPPORTED, "no compiled variant runs " + describe(pr) + ": " + skipped);
  }
  return error(ATTNFORGE_INTERNAL, "heuristic table has no row for this problem");
}

// The rules, in order. The tune cache and the memory budget go between rule_debug and
// rule_heuristic (autotune, issue 5).
constexpr Rule kRules[] = {rule_explicit_variant, rule_explicit_backend, rule_env_backend, rule_debug,
                           rule_heuristic};

}  // namespace

ATTNFORGE_API Selection select_variant(const Problem& problem, attnforge_backend requested, const char* variant_name,
                         const Params& p) {
  const SelectContext ctx{problem, requested, variant_name, p};
  for (Rule rule : kRules) {
    if (auto s = rule(ctx)) return *s;
  }
  return error(ATTNFORGE_INTERNAL, "no selection rule decided");
}

}  // namespace attnforge
