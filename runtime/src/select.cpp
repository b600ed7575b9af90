// Variant selection: an ordered list of rules, each either deciding (a variant or an error, with
// its reason) or passing to the next, noting why it passed. Explicit variant → explicit backend →
// ATTNFORGE_BACKEND → ATTNFORGE_DEBUG → tune cache (exact key, then nearest bucket) → heuristic
// table. AUTO's memory budget excludes variants whose scratch does not fit. Decisions are memoized
// per call shape (thread-safe); ATTNFORGE_LOG=1 prints each distinct decision once.
#include "select.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/launch_checks.hpp"
#include "estimate.hpp"
#include "tune_lookup.hpp"

namespace attnforge {

namespace {

// ---- the environment, read once per process (select_reset() re-reads it) -------------------
struct Env {
  std::string backend;  // ATTNFORGE_BACKEND ("" = unset)
  bool debug = false;   // ATTNFORGE_DEBUG=1
  bool log = false;     // ATTNFORGE_LOG=1
};
Env read_env() {
  Env e;
  if (const char* b = std::getenv("ATTNFORGE_BACKEND")) e.backend = b;
  const char* d = std::getenv("ATTNFORGE_DEBUG");
  e.debug = d != nullptr && std::string_view(d) == "1";
  const char* l = std::getenv("ATTNFORGE_LOG");
  e.log = l != nullptr && std::string_view(l) == "1";
  return e;
}

struct SelectContext {
  const Problem& problem;
  attnforge_backend requested;
  const char* variant_name;
  const Params& params;
  const Env& env;
  int device;         // current CUDA device (-1: none), whose tune cache applies
  std::string notes;  // why earlier AUTO rules passed; appended to the final reason
};

// A rule decides (returns a Selection, success or error) or passes (nullopt).
using Rule = std::optional<Selection> (*)(SelectContext&);

Selection ok(const VariantInfo* v, std::string reason) { return Selection{v, ATTNFORGE_OK, std::move(reason)}; }
Selection error(attnforge_status s, std::string message) { return Selection{nullptr, s, std::move(message)}; }

std::string describe(const Problem& pr) {
  return std::string(to_string(pr.dtype)) + " " + to_string(pr.direction) + " head_dim " +
         std::to_string(pr.head_dim) + " mask " + (mask_name(pr.mask_id) ? mask_name(pr.mask_id) : "?");
}

// Human-readable size: exact bytes below 1 MiB (so small budgets never read "0.0 MiB > 0.0 MiB").
std::string mib(size_t bytes) {
  if (bytes < (size_t(1) << 20)) return std::to_string(bytes) + " B";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / (1 << 20));
  return buf;
}

// With the budget: does v's scratch fit? Fills `why` when not.
bool fits_budget(const VariantInfo& v, const SelectContext& c, std::string* why) {
  const size_t budget = c.problem.memory_budget;
  if (budget == 0) return true;
  const size_t need = scratch_bytes(v, c.problem, c.params);
  if (need <= budget) return true;
  if (why) *why = std::string(v.name) + " needs " + mib(need) + " of scratch > memory_budget " + mib(budget);
  return false;
}

// ---- tile preferences of the heuristic ------------------------------------------------------------
// Within a backend the generator's tile order is the default preference; a row here moves the
// matching tile to the front for the problems it covers (0 = any; the first covering row applies).
// Rows come from measurements: each says which.
struct TilePreference {
  Backend backend;
  Direction direction;
  int cc_major;             // the device's compute-capability major (9: Hopper, where other kernels run)
  bool tensor_free_masks;   // only for mask kinds without a tensor (the Hopper backward's domain)
  const char* masks;        // only for these mask kinds (space-separated names; nullptr: any)
  int min_head_dim, max_head_dim;
  int min_seqlen_k, max_seqlen_k;
  int min_seqlen_q;         // 0 = any; rows measured with Sq = Sk keep out of decode (Sq = 1)
  int block_m, block_n, warps, stages;
  const char* why;
};
// Backward on Hopper (flash/bwd_sm90.cuh), D = 64 (the kernel's smallest head dim; below it the
// next row applies), masks without a tensor. H200, 2026-11-29, bf16, B·S = 16384,
// scripts/dev/flash_bwd_devrun.sh SM90=1, TFLOP/s non-causal / causal at S = 4096:
// m64n64w4s1 (one dQ staging buffer, three CTAs per SM) 311 / 222, m64n64w4s2 (two CTAs) 253 / 223,
// m64n128w8 216 / 190; the mma.sync kernel's best (m64n128w4) 244 / 208 in an earlier run.
constexpr const char* kHopperBwdD64 = "m64n64w4s1: fastest flash backward at D = 64 on Hopper (wgmma kernel)";
// Forward on Hopper (flash/fwd_sm90.cuh), D = 64: attnforge-tune on the H200 (2026-11-29, training
// grid, bf16, none and causal, S 512 … 16384): m128n128w4s2 won all 12 D = 64 forward shapes, by
// 3.9–16 % over m128n64w4s2 (autotune/results/h200_training.md); the H100 wgmma runs of 2026-11-25
// (bench/NOTES-flash.md, v3) had it best at D = 64 too.
constexpr const char* kHopperFwdD64 = "m128n128w4: fastest flash forward at D = 64 on Hopper (wgmma kernel)";
// From S_k = 8192 on, the warp-specialized sm90a tile with three consumer warpgroups (m192 w16, FA3's
// D = 64 shape) takes over at D = 64. H200, 2026-11-29 (fifth session), scripts/dev/flash_fwd_devrun.sh DEV_FLAGS=-DDEV_WS,
// bf16, B·S = 16384, TFLOP/s non-causal / causal: S 8192 m192n128w16 468.5 / 396.2 against m128n128w12's
// 420.7 / 375.2; S 16384 468.8 / 420.9 against 428.4 / 398.8. Below 8192 causal, m128 leads (S 4096:
// 342.0 against 333.7), and the tuner had m128n128w12 within noise of or behind m128n128w4 there.
// H200, 2026-11-30 (seventh session), scripts/dev/flash_fwd_ab.sh, the persistent kernels, two runs,
// bf16, B·S = 16384, TFLOP/s: without a mask m192 leads from S_k = 2048 on (S 2048 431 / 432 against
// m128n128w12's 399 / 405 and m128n128w4's 407 in the compare of the same day; S 4096 445 / 446 against
// 425 / 420); causal m192 loses at S 2048 (276 against 326) and the 192-key tile leads from 4096 on.
constexpr const char* kHopperFwdD64Long =
    "m192n128w16 sm90a: fastest flash forward at D = 64 on Hopper without a mask from S_k = 2048, with other "
    "tensor-free masks from 8192 (warp-specialized kernel)";
// Causal, D = 64, same runs: m128n192w12 376 / 372 at S 4096 against m192's 366 / 364 and m128n128w12's
// 364 / 347; S 8192 411 / 409 against 407 / 406; S 16384 431 / 431 against 426 / 426. At S 2048 it
// loses (310 against 326): the wider diagonal tile wastes more.
// Since the wgmma descriptors are built once per tile (v15), m192 leads causal from 4096 on and the
// two-consumer m128n128w12 from 2048. H200, 2026-11-30 (fourteenth session), scripts/dev/lib_ab.sh with
// kernel_breakdown.py --fwd-tiles: kernel µs through the binding, bf16, B·S = 16384, three device calls
// (bench/results/h200_2026-11-30l_lib_ab.md): S 16384 m192n128w16 2380 / 2389 / 2411 / 2436 against
// m128n192w12's 2477 / 2501 / 2516 / 2534; S 8192 1276 / 1265 against 1316 / 1304; S 4096 714–729
// against 722–734; S 2048 m128n128w12 410 / 408 / 414 / 412 against m128n128w4's 415 / 418 / 418 / 421
// (m192 482, m128n192w12 428–432); S 1024 and 512 m128n128w4 ties or leads (248.5 against 249.7; 164
// against 170), so the wgmma kernel keeps them.
// Since the diagonal tile is masked without bounds tests (v29, two masked tiles per 192-row block),
// m192 leads at S 2048 too. H200, 2026-11-30 (seventeenth session), TFLOP/s, two rounds each: dev A/B
// 344.7 / 352.3 against m128n128w12's 343.3 / 339.4; through the binding with compare_torch's timer
// (scripts/dev/fwd_tiles.py, bench/results/h200_2026-11-30s_fwd_tiles.md) 0.891x cuDNN against 0.879x
// and m128n128w4's 0.854x. At S 1024 and 512 m128n128w4 still ties or leads (0.843x against 0.855x /
// 0.822x; 0.828x against 0.801x / 0.652x).
constexpr const char* kHopperFwdD64CausalLong =
    "m192n128w16 sm90a: fastest causal flash forward at D = 64 and S_k >= 2048 on Hopper (warp-specialized kernel)";
// A third K/V stage lets the three free-running consumer warpgroups drift two key tiles apart instead of
// one. H200, 2026-12-01 (thirtieth session, bench/results/h200_2026-12-01zp_fwd_tiles_ab.md), kernel µs,
// kernel_breakdown.py --fwd-tiles, four runs of s2 and two of s3 in one call: causal S 4096 591.8 / 589.5
// against 595.2–599.1, S 8192 1070.1 / 1066.2 against 1083.6–1091.8, S 16384 2052.1 / 2046.4 against
// 2099.8–2142.2; S 2048 level (354.8 / 354.6 against 353.3–356.0) and without a mask level or behind.
constexpr const char* kHopperFwdD64CausalS3 =
    "m192n128w16s3 sm90a: fastest causal flash forward at D = 64 and S_k >= 4096 on Hopper (three K/V stages)";
// D = 128: the generator's first sm90a tile, m128n128w12, at every length. 176 keys per tile led from
// S_k 8192 in the seventh session (non-causal S 8192 613 / 612 against 606 / 606, S 16384 622 / 622
// against 612 / 612) and lost below; after v15–v29 it loses there too. H200, 2026-11-30 (seventeenth
// session), scripts/dev/fwd_tiles.py, x cuDNN of the same rounds (bench/results/h200_2026-11-30s_fwd_tiles.md):
// S 8192 1.022 / 1.026 (non-causal / causal) against n176's 0.999 / 0.969, S 16384 0.988 / 1.026 against
// 0.972 / 0.995, S 4096 0.986 / 0.992 against 0.893 / 0.931; one sustained sample of the sixteenth session
// agreed at S 8192 (604 / 561 against 601 / 549 TFLOP/s). Measured again after the twenty-third
// session's register fix (H200, 2026-12-01, bench/results/h200_2026-12-01zp_fwd_tiles_ab.md, kernel µs,
// four runs each): n176 / n128 1.126 / 1.076 / 1.017 / 1.009 without a mask and 1.31 / 1.18 / 1.10 / 1.06
// causal at S 2048 / 4096 / 8192 / 16384, so default.toml no longer builds it (gpu.toml does, for the tuner).
// D = 192 / 256 (v14, H200, 2026-11-30, ninth session, scripts/dev/flash_fwd_ab.sh, two runs, bf16,
// B·S = 16384, H 10 / 8, TFLOP/s against the first tile m128n64w12): D 192 with 112 keys per tile,
// non-causal S 4096 616 / 611 against 567 / 548, S 8192 651 / 650 against 575 / 570; causal S 4096
// 547 / 575 against 497 / 508, S 8192 585 / 594 against 512 / 513; S 2048 a tie (564 / 566 against
// 602 / 562; causal 495 / 482 against 494 / 492). D 256 with 80 keys: S 4096 620 / 616 against 580 / 581,
// S 8192 627 / 641 against 603 / 604; causal S 4096 563 / 601 against 540 / 563, S 8192 594 / 594 against
// 562 / 559; S 2048 a tie. Window masks and decode were not measured: the rows ask for none / causal
// and Sq as long as Sk. Both tiles ship since the FlashFwd suites passed on them (gpu.toml build, tree
// 11f01a3, H200, 2026-11-30, tenth session); where a build leaves them out, these rows match no candidate
// and the first tile serves. Since v40 (the softmax beside the warpgroup's own P·V on n64 and n112, not
// on n80, whose registers it would spill; bench/results/h200_2026-11-30zb_fwd_own_overlap_wide.md, kernel
// µs, two runs) n64 leads D 256 causal at every length (S 2048 / 4096 / 8192 / 16384: 225 / 386 / 710 /
// 1370 against n80's 241 / 403 / 736 / 1410) and without a mask up to 4096 (400 / 743 against 401 / 752);
// n80 keeps 8192 and 16384 (1418 / 2783 against 1438 / 2836). D 192 keeps its rows: n112 from 4096 (none
// 738 against 751, causal 384 against 392), n64 below (S 2048 398 against 428, causal 224 against 232).
// Since v50 (lazy rescaling on the mask-free ping-pong tiles, which n64 gains more from than the wider
// tiles; H200, 2026-12-02, bench/results/h200_2026-12-02zzg_fwd_lazy_wide_none.md, kernel µs, two runs,
// S 2048 / 4096 / 8192 / 16384) D 256 n64 leads without a mask too (375 / 692 / 1327 / 2593 against n80's
// 387 / 719 / 1360 / 2680), so n80 has no row and default.toml no longer builds it (gpu.toml does, for the
// tuner); D 192 n64 keeps S_k 4096 without a mask (697 against n112's 712) and n112 takes 8192 / 16384
// (1318 / 2525 against 1347 / 2655). The causal rows are v40's (their tiles were lazy already).
constexpr const char* kHopperFwdD192CausalLong =
    "m128n112w12 sm90a: fastest causal flash forward at D = 192 and S_k >= 4096 on Hopper (warp-specialized kernel)";
constexpr const char* kHopperFwdD192Long =
    "m128n112w12 sm90a: fastest flash forward at D = 192 without a mask and S_k >= 8192 on Hopper (warp-specialized kernel)";
// The warp-specialized backward (sm90a, m64n128w12: a TMA producer warpgroup, two consumer warpgroups)
// takes over at D = 64 from S_k = 8192. H200, 2026-11-29 (fifth session), scripts/dev/flash_bwd_devrun.sh SM90=1, bf16,
// B·S = 16384, TFLOP/s non-causal / causal: S 16384 370.2 / 346.8 against m64n64w4s1's 355.4 / 304.5;
// S 4096 357.6 / 311.7 against 353.8 / 314.6 (a tie); S 1024 278.7 / 198.3 against 288.4 / 219.7.
// At D = 128 it is the generator's first bwd tile: 500.5 / 476.2 against m64n128w8's 392.0 / 375.7 (S 16384).
// Without a mask it leads from S_k = 4096 (H200, 2026-11-30, seventh session, flash_bwd_ab.sh, two runs:
// S 4096 367.1 / 364.2 against m64n64w4s1's 349.9 / 354.3; S 2048 a tie, 333.5 / 331.9 against
// 331.5 / 331.3); causal ties at 4096 and 8192 (315.5 / 312.2 against 314.4 / 311.1) and loses at 2048
// (264.7 against 281.1), so causal keeps the 8192 bound.
constexpr const char* kHopperBwdD64Long =
    "m64n128w12 sm90a: fastest flash backward at D = 64 on Hopper from S_k = 8192, without a mask from 4096 "
    "(warp-specialized kernel)";
// 128-query steps (m128n128w12 sm90a: every GEMM of a step twice as long, half the per-step barriers,
// one dQ reduce-add per warpgroup) lead both D = 64 tiles above. H200, 2026-11-30 (tenth session),
// scripts/dev/flash_bwd_ab.sh, two runs, bf16, B·S = 16384, TFLOP/s non-causal / causal against the best
// of m64n128w12 and m64n64w4s1: S 1024 310 / 311 against 288 / 288, causal 214 / 214 against 220 / 220;
// S 2048 364 / 369 against 335 / 333, causal 287 / 291 against 284 / 285; S 4096 401 / 405 against
// 367 / 366, causal 351 / 351 against 321 / 317; S 8192 421 / 423 against 379 / 377, causal 391 / 387
// against 345 / 341; S 16384 433 / 433 against 378 / 378, causal 400 / 403 against 356 / 357. Window
// masks (the tile spills 420 bytes there) and Sq shorter than Sk were not timed: they keep the rows below.
constexpr const char* kHopperBwdD64Step128 =
    "m128n128w12 sm90a: fastest flash backward at D = 64 on Hopper, without a mask from S_k = 1024, causal "
    "from 2048 (warp-specialized kernel, 128-query steps)";
// Fused forward on Hopper: the warp-specialized streamed key row (fused/fwd_sm90_ws.cuh, m128w12s2: S formed
// twice, a TMA producer warpgroup and two consumers, persistent, P by TMA stores) against its one-warpgroup
// form (fwd_sm90_stream.cuh, m64w4s2, which had beaten the register-held rows m64n512w8 / m32n1024w8 by
// 1.6–2.3× with the weights, run zs). H200, 2026-12-01 (thirty-third session, compare_torch.py in one
// process, bench/results/h200_2026-12-01zt_fused_ws_compare.md), bf16, B·S = 16384, TFLOP/s ws / stream:
// with the weights D 64 S 256 / 512 / 1024 132.5 / 116.8, 161.9 / 150.6, 184.9 / 168.5; D 128 208.7 / 156.2,
// 233.4 / 193.0, 284.2 / 214.0 (+4 to +34 % with the causal rows); without them 204.0 / 135.8 … 380.1 /
// 235.2 (+31 to +62 %).
constexpr const char* kHopperFusedStream =
    "m128n1024w12s2 sm90a: fastest fused forward at D 64 / 128 on Hopper (streamed key row, TMA producer, P by TMA)";
constexpr TilePreference kTilePreference[] = {
    {Backend::fused, Direction::fwd, 9, false, nullptr, 64, 128, 0, 0, 0, 128, 0, 12, 2, kHopperFusedStream},
    // Backward, D ≤ 64: m64n128w4 beat the generator's first bwd tile m64n128w8 and m64n64w4 on the
    // H200 (2026-11-29, S = 4096, bf16, scripts/dev/flash_bwd_devrun.sh TILES=1): 244 / 208 TFLOP/s
    // non-causal / causal against 187 / 163 (m64n128w8) and 204 / 163 (m64n64w4). At D = 128 the
    // order stands: m64n128w8 247 / 209, m64n64w4s1 230 / 213 (within 2% causal), m64n64w4s2 159.
    // Forward (H100, 2026-11-25): the first tile, m128n64w4, won 21 of the 24 forward shapes and
    // was within 5% on the other 3 (D = 64, S ≤ 1024). On sm_90 the generator's first tile is now the
    // warp-specialized m128n128w12 (arch sm90a; other devices skip it), which leads at D = 128, and its
    // first bwd tile the warp-specialized m64n128w12 (sm90a), which leads at D = 128 (kHopperBwdD64Long).
    {Backend::flash, Direction::fwd, 9, true, "causal", 64, 64, 4096, 0, 4096, 192, 128, 16, 3, kHopperFwdD64CausalS3},
    {Backend::flash, Direction::fwd, 9, true, "causal", 64, 64, 2048, 0, 2048, 192, 128, 16, 2, kHopperFwdD64CausalLong},
    {Backend::flash, Direction::fwd, 9, true, "none", 64, 64, 2048, 0, 2048, 192, 128, 16, 2, kHopperFwdD64Long},
    {Backend::flash, Direction::fwd, 9, true, nullptr, 64, 64, 8192, 0, 0, 192, 128, 16, 2, kHopperFwdD64Long},
    {Backend::flash, Direction::fwd, 9, false, nullptr, 64, 64, 0, 0, 0, 128, 128, 4, 0, kHopperFwdD64},
    {Backend::flash, Direction::fwd, 9, true, "causal", 192, 192, 4096, 0, 4096, 128, 112, 12, 0, kHopperFwdD192CausalLong},
    {Backend::flash, Direction::fwd, 9, true, "none", 192, 192, 8192, 0, 8192, 128, 112, 12, 0, kHopperFwdD192Long},
    {Backend::flash, Direction::bwd, 9, true, "none", 64, 64, 1024, 0, 1024, 128, 128, 12, 0, kHopperBwdD64Step128},
    {Backend::flash, Direction::bwd, 9, true, "causal", 64, 64, 2048, 0, 2048, 128, 128, 12, 0, kHopperBwdD64Step128},
    {Backend::flash, Direction::bwd, 9, true, "none", 64, 64, 4096, 0, 0, 64, 128, 12, 0, kHopperBwdD64Long},
    {Backend::flash, Direction::bwd, 9, true, nullptr, 64, 64, 8192, 0, 0, 64, 128, 12, 0, kHopperBwdD64Long},
    {Backend::flash, Direction::bwd, 9, true, nullptr, 64, 64, 0, 0, 0, 64, 64, 4, 1, kHopperBwdD64},
    {Backend::flash, Direction::bwd, 0, false, nullptr, 0, 64, 0, 0, 0, 64, 128, 4, 0,
     "m64n128w4: fastest flash backward at D <= 64 on the H200"},
};

// Is `name` one of the space-separated mask kinds of `list` (nullptr: every kind)?
bool mask_listed(const char* list, const char* name) {
  if (list == nullptr) return true;
  if (name == nullptr) return false;
  const std::string_view l(list), n(name);
  for (size_t at = 0; at <= l.size();) {
    const size_t end = std::min(l.find(' ', at), l.size());
    if (l.substr(at, end - at) == n) return true;
    at = end + 1;
  }
  return false;
}

bool preference_covers(const TilePreference& t, Backend b, const Problem& pr, int cc_major) {
  return t.why != nullptr && t.backend == b && t.direction == pr.direction &&
         (t.cc_major == 0 || t.cc_major == cc_major) && (!t.tensor_free_masks || !mask_has_tensor(pr.mask_id)) &&
         mask_listed(t.masks, mask_name(pr.mask_id)) &&
         (t.min_head_dim == 0 || pr.head_dim >= t.min_head_dim) &&
         (t.max_head_dim == 0 || pr.head_dim <= t.max_head_dim) &&
         (t.min_seqlen_k == 0 || pr.seqlen_k >= t.min_seqlen_k) &&
         (t.max_seqlen_k == 0 || pr.seqlen_k <= t.max_seqlen_k) && pr.seqlen_q >= t.min_seqlen_q;
}
bool tile_matches(const TilePreference& t, const VariantKey& k) {
  return (t.block_m == 0 || k.block_m == t.block_m) && (t.block_n == 0 || k.block_n == t.block_n) &&
         (t.warps == 0 || k.warps == t.warps) && (t.stages == 0 || k.stages == t.stages);
}

// Backend b's candidates for the problem in heuristic order: preferred tiles first, then the
// generator's order. `why` gets the preference that applied, if any. The first covering row whose tile
// the build has applies; a row naming a tile the build lacks (a user's variant set) falls to the next.
std::vector<const VariantInfo*> heuristic_order(Backend b, const Problem& pr, int device, const char** why) {
  auto cands = candidates(b, pr.direction, pr.dtype, pr.head_dim, pr.mask_id);
  *why = nullptr;
  const int cc_major = device >= 0 ? device_cc_major(device) : 0;
  for (const TilePreference& t : kTilePreference) {
    if (!preference_covers(t, b, pr, cc_major)) continue;
    auto it = std::stable_partition(cands.begin(), cands.end(),
                                    [&](const VariantInfo* v) { return tile_matches(t, v->key); });
    if (it == cands.begin()) continue;
    *why = t.why;
    break;
  }
  return cands;
}

// The first candidate of backend b that runs the problem (and, with_budget, fits the budget and
// follows the heuristic's tile preferences), or an error saying why none can.
Selection pick_backend(Backend b, const SelectContext& c, const std::string& why, bool with_budget) {
  std::string missing;
  const VariantInfo* first = first_fitting_variant(b, c.problem, &missing);
  if (first == nullptr) return error(ATTNFORGE_UNSUPPORTED, missing);
  if (!with_budget) return ok(first, why + ": " + first->name);
  std::string over;
  const char* preferred = nullptr;
  for (const VariantInfo* v : heuristic_order(b, c.problem, c.device, &preferred)) {
    if (!variant_fits(*v, c.problem, nullptr)) continue;
    std::string w;
    if (fits_budget(*v, c, &w))
      return ok(v, why + ": " + v->name + (preferred ? std::string(" (tile: ") + preferred + ")" : ""));
    if (over.empty()) over = w;
  }
  return error(ATTNFORGE_UNSUPPORTED, over);
}

// A backend forced by the caller or the environment: its fastest tile in the tune cache when the
// cache has timed one for this class of problem, else the heuristic's tile order. No budget.
Selection pick_forced_backend(Backend b, const SelectContext& c, const std::string& why) {
  Selection s = pick_backend(b, c, why, false);
  if (s.variant == nullptr) return s;
  const TuneHit hit = tune_lookup(c.problem, c.device);
  for (size_t i = 0; hit.found && i < hit.ranked.size(); ++i) {
    const VariantInfo* v = find_variant(hit.ranked[i]);
    if (v == nullptr || v->key.backend != b || !variant_fits(*v, c.problem, nullptr)) continue;
    char t[48];
    std::snprintf(t, sizeof t, "%.3f ms", hit.ms[i]);
    return ok(v, why + ": " + v->name + " (its fastest tile in the " + hit.origin + ": " + t + ")");
  }
  const char* preferred = nullptr;
  for (const VariantInfo* v : heuristic_order(b, c.problem, c.device, &preferred))
    if (variant_fits(*v, c.problem, nullptr))
      return ok(v, why + ": " + v->name + (preferred ? std::string(" (tile: ") + preferred + ")" : ""));
  return s;
}

std::optional<Backend> parse_backend(std::string_view s) {
  if (s == "unfused") return Backend::unfused;
  if (s == "fused") return Backend::fused;
  if (s == "flash") return Backend::flash;
  return std::nullopt;
}

// ---- rule 1: an exact variant name (autotuner, tests) ------------------------------------------
std::optional<Selection> rule_explicit_variant(SelectContext& c) {
  if (c.variant_name == nullptr || c.variant_name[0] == '\0') return std::nullopt;
  const VariantInfo* v = find_variant(c.variant_name);
  const std::string name = c.variant_name;
  if (v == nullptr) {
    return error(ATTNFORGE_INVALID_ARGUMENT,
                 "unknown variant '" + name + "' (attnforge_variant_name lists the " +
                     std::to_string(all_variants().size()) + " compiled variants)");
  }
  std::string why;
  if (!variant_fits(*v, c.problem, &why))
    return error(ATTNFORGE_UNSUPPORTED, "variant '" + name + "' cannot run this call: " + why);
  return ok(v, "variant requested explicitly: " + name);
}

// ---- rule 2: an explicit backend in the args ---------------------------------------------------
std::optional<Selection> rule_explicit_backend(SelectContext& c) {
  switch (c.requested) {
    case ATTNFORGE_BACKEND_AUTO: return std::nullopt;
    case ATTNFORGE_BACKEND_UNFUSED:
    case ATTNFORGE_BACKEND_FUSED:
    case ATTNFORGE_BACKEND_FLASH: {
      const Backend b = Backend(int(c.requested));
      return pick_forced_backend(b, c, std::string("backend ") + to_string(b) + " requested explicitly");
    }
  }
  return error(ATTNFORGE_INVALID_ARGUMENT,
               "expected backend to be one of AUTO, UNFUSED, FUSED, FLASH, got " + std::to_string(int(c.requested)));
}

// ---- rule 3: ATTNFORGE_BACKEND=unfused|fused|flash (auto or unset: pass) ------------------------
std::optional<Selection> rule_env_backend(SelectContext& c) {
  const std::string& env = c.env.backend;
  if (env.empty() || env == "auto") return std::nullopt;
  const auto b = parse_backend(env);
  if (!b) {
    return error(ATTNFORGE_INVALID_ARGUMENT,
                 "expected ATTNFORGE_BACKEND to be one of auto, unfused, fused, flash, got '" + env + "'");
  }
  return pick_forced_backend(*b, c, "ATTNFORGE_BACKEND=" + env);
}

// ---- rule 4: ATTNFORGE_DEBUG=1 → unfused (every intermediate, P included, is a plain tensor) ---
std::optional<Selection> rule_debug(SelectContext& c) {
  if (!c.env.debug) return std::nullopt;
  return pick_backend(Backend::unfused, c, "ATTNFORGE_DEBUG=1 selects unfused", false);
}

// ---- rule 5: the tune cache -------------------------------------------------------------------
// The entry of this key, else of the nearest bucket of the same class (direction, dtype, heads,
// head dim, mask). Its variants are tried fastest first; one that cannot run this exact call
// (e.g. fused beyond its Sk limit, from a smaller bucket) or exceeds the budget is passed over.
std::optional<Selection> rule_tune_cache(SelectContext& c) {
  const TuneHit hit = tune_lookup(c.problem, c.device);
  if (!hit.found) {
    c.notes += (c.notes.empty() ? "" : "; ") + hit.origin;
    return std::nullopt;
  }
  std::string passed;
  for (size_t i = 0; i < hit.ranked.size(); ++i) {
    const VariantInfo* v = find_variant(hit.ranked[i]);
    std::string why;
    if (v == nullptr) why = hit.ranked[i] + " is not in this build";
    else if (!variant_fits(*v, c.problem, &why)) why = hit.ranked[i] + ": " + why;
    else if (!fits_budget(*v, c, &why)) {
    } else {
      char t[64];
      std::snprintf(t, sizeof t, " (%.3f ms%s)", hit.ms[i], i == 0 ? ", the winner" : "");
      std::string reason = hit.origin + ": " + v->name + t;
      if (i == 0 && hit.ranked.size() > 1) {
        char r[64];
        std::snprintf(r, sizeof r, " %.3f ms", hit.ms[1]);
        reason += "; runner-up " + hit.ranked[1] + r;
      }
      if (!passed.empty()) reason += " (passed over: " + passed + ")";
      return ok(v, reason);
    }
    passed += (passed.empty() ? "" : "; ") + why;
  }
  c.notes += (c.notes.empty() ? "" : "; ") + hit.origin + ": no timed variant usable (" + passed + ")";
  return std::nullopt;
}

// ---- rule 6: the heuristic table ------------------------------------------------------------------
// One row per situation, first matching row wins; its backends are tried left to right, the first
// with a compiled candidate that runs the call (head dim, Sk limit, weights) and fits the memory
// budget is chosen. A head dim no fast backend has therefore falls through to unfused (hdany).
struct HeuristicRow {
  bool fp32_only;         // the row applies only to fp32 inputs (and the other rows only to 16-bit)
  bool weights_only;      // the row applies only when P is requested (else with or without P)
  bool fwd_only;          // the row applies only to the forward
  int max_seqlen_k;       // the row applies only when Sk ≤ this (0: any Sk)
  std::array<Backend, 3> order;
  int count;
  const char* why;
};
// The measurements behind the rows: attnforge-tune over DESIGN.md's training grid on an H100 80GB
// HBM3 (bf16, B·S = 16384, H·D = 2048, D ∈ {64, 128}, S = 512 … 16384, causal and not; 48 shapes,
// every compiled tile of every backend timed, L2 flushed, median of 7; 2026-11-25, kernels as of
// commit ~f50cca8; autotune/results/h100_training.md). Where the tuner has run, its cache decides.
// flash won all 48. fused (only Sk ≤ 512–1024 fits on chip) was 1.7–2.3× slower than flash at
// S = 512 forward and 1.4–1.9× backward; unfused 4.5–15× slower forward, 1.8–5.5× backward.
constexpr HeuristicRow kHeuristic[] = {
    // fp32 inputs (flash has none): unfused, with or without P. The fused fp32 kernel (FFMA, one
    // CTA per 16 rows) measured 2.6–3.3× slower than unfused fp32 forward and 3.5–5.0× backward on an
    // H200 after its rework (causal, S 512 / 1024, D 64 / 128; bench/results/h200_2026-11-30h_f32_tune.md;
    // 6.6–8.2× before it, h200_2026-11-30f_tune.md); it stays the fallback when unfused's workspace
    // exceeds the memory budget (fused needs none).
    {true, false, false, 0, {Backend::unfused, Backend::fused, Backend::unfused}, 2, "heuristic: fp32 inputs"},
    // P requested: flash never materialises P. fused writes it from the same kernel while the key
    // row fits on chip; unfused always can (P is its intermediate anyway). Not on the training
    // grid (no weights there); issue 4's target is fused ≥ 2× unfused's forward with weights at S ≤ 1024.
    {false, true, false, 0, {Backend::fused, Backend::unfused, Backend::unfused}, 2, "heuristic: attention weights requested"},
    // Everything else (P not requested: the row above took those): flash (O(N) memory; 199–543 TFLOP/s forward and 96–235 backward on the grid
    // above, the fastest at every S from 512 up). A short-keys → fused row was here first (issue 4's target:
    // ≥ 1.2× flash at Sk ≤ 512); measured, it chose a kernel 1.6–2.3× slower than flash on the 4
    // forward S = 512 shapes, so it went. fused remains the fallback when flash lacks the head
    // dim or mask and the key row fits on chip; unfused runs everything else.
    {false, false, false, 0, {Backend::flash, Backend::fused, Backend::unfused}, 3, "heuristic: default"},
};

bool row_applies(const HeuristicRow& row, const Problem& pr) {
  if (row.fp32_only != (pr.dtype == DType::f32)) return false;
  if (row.weights_only && !pr.wants_weights) return false;
  if (row.fwd_only && pr.direction != Direction::fwd) return false;
  if (row.max_seqlen_k != 0 && pr.seqlen_k > row.max_seqlen_k) return false;
  return true;
}

std::optional<Selection> rule_heuristic(SelectContext& c) {
  const Problem& pr = c.problem;
  for (const HeuristicRow& row : kHeuristic) {
    if (!row_applies(row, pr)) continue;
    std::string skipped;  // why earlier backends of the row were passed over
    for (int i = 0; i < row.count; ++i) {
      Selection s = pick_backend(row.order[i], c, row.why, true);
      if (s.variant != nullptr) {
        if (!skipped.empty()) s.reason += " (passed over: " + skipped + ")";
        if (!c.notes.empty()) s.reason += " [" + c.notes + "]";
        return s;
      }
      skipped += (skipped.empty() ? "" : "; ") + s.reason;
    }
    return error(ATTNFORGE_UNSUPPORTED, "no compiled variant runs " + describe(pr) +
                                            (pr.memory_budget ? " within memory_budget " + mib(pr.memory_budget) : "") +
                                            ": " + skipped);
  }
  return error(ATTNFORGE_INTERNAL, "heuristic table has no row for this problem");
}

// The rules, in order.
constexpr Rule kRules[] = {rule_explicit_variant, rule_explicit_backend, rule_env_backend, rule_debug,
                           rule_tune_cache, rule_heuristic};

// ---- memoization ------------------------------------------------------------------------------
// Everything a decision depends on. Scratch (hence the budget rule) depends on the exact sizes,
// deterministic mode and whether the caller supplied the LSE, so the key holds those, not buckets.
struct MemoKey {
  int device, requested, direction, dtype, batch, seqlen_q, seqlen_k, heads_q, heads_kv, head_dim, mask_id;
  bool varlen, weights, deterministic, lse_supplied;
  size_t budget;
  std::string variant;
  bool operator==(const MemoKey&) const = default;
};
struct MemoHash {
  size_t operator()(const MemoKey& k) const noexcept {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    for (int v : {k.device, k.requested, k.direction, k.dtype, k.batch, k.seqlen_q, k.seqlen_k, k.heads_q,
                  k.heads_kv, k.head_dim, k.mask_id})
      mix(uint64_t(uint32_t(v)));
    mix(uint64_t(k.varlen) | uint64_t(k.weights) << 1 | uint64_t(k.deterministic) << 2 | uint64_t(k.lse_supplied) << 3);
    mix(k.budget);
    if (!k.variant.empty()) mix(std::hash<std::string>{}(k.variant));
    return size_t(h);
  }
};

constexpr size_t kMemoCapacity = 4096;  // varied shapes (varlen) must not grow it without bound

struct Memo {
  std::shared_mutex mu;
  std::unordered_map<MemoKey, Selection, MemoHash> map;
  uint64_t generation = 0;  // tune_lookup_generation() the entries were decided under
  Env env = read_env();
};
Memo& memo() {
  static Memo* m = new Memo;  // never destroyed: calls may come during static destruction
  return *m;
}

// The device whose tune cache applies. With one visible device (the common case) that is device 0,
// known after the first call, and a selection makes no CUDA call at all: on the H100 machine a
// memoized selection took 2.0 µs with a cudaGetDevice per call, against 0.08 µs on a CPU-only host
// where that call fails at once (autotune/results/h100_training.md) — the whole 2 µs budget. With
// several devices it is asked each time, since the caller may switch devices between calls.
int current_device() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      n = 0;
    }
    return n;
  }();
  if (count <= 0) return -1;
  if (count == 1) return 0;
  int d = -1;
  if (cudaGetDevice(&d) != cudaSuccess) {
    (void)cudaGetLastError();
    return -1;
  }
  return d;
}

std::string describe_key(const MemoKey& k) {
  std::string s = std::string(to_string(Direction(k.direction))) + " " + to_string(DType(k.dtype)) +
                  " B=" + std::to_string(k.batch) + " Sq=" + std::to_string(k.seqlen_q) +
                  " Sk=" + std::to_string(k.seqlen_k) + " Hq=" + std::to_string(k.heads_q) +
                  " Hkv=" + std::to_string(k.heads_kv) + " D=" + std::to_string(k.head_dim) + " mask=" +
                  (mask_name(k.mask_id) ? mask_name(k.mask_id) : "?");
  if (k.varlen) s += " varlen";
  if (k.weights) s += " weights";
  if (k.budget) s += " budget=" + mib(k.budget);
  if (k.requested) s += std::string(" backend=") + attnforge_backend_name(attnforge_backend(k.requested));
  if (!k.variant.empty()) s += " variant=" + k.variant;
  return s;
}

Selection decide(const Problem& problem, attnforge_backend requested, const char* variant_name, const Params& p,
                 const Env& env, int device) {
  SelectContext ctx{problem, requested, variant_name, p, env, device, {}};
  for (Rule rule : kRules) {
    if (auto s = rule(ctx)) return *s;
  }
  return error(ATTNFORGE_INTERNAL, "no selection rule decided");
}

}  // namespace

Selection select_variant(const Problem& problem, attnforge_backend requested, const char* variant_name,
                         const Params& p) {
  try {
    Memo& m = memo();
    const int device = current_device();
    MemoKey key{device, int(requested), int(problem.direction), int(problem.dtype), problem.batch,
                problem.seqlen_q, problem.seqlen_k, problem.heads_q, problem.heads_kv, problem.head_dim,
                problem.mask_id, problem.varlen, problem.wants_weights, p.deterministic,
                problem.direction == Direction::fwd ? p.lse != nullptr : true, problem.memory_budget,
                variant_name ? std::string(variant_name) : std::string()};
    const uint64_t gen = tune_lookup_generation();
    Env env;
    {
      std::shared_lock<std::shared_mutex> lk(m.mu);
      if (m.generation == gen) {
        auto it = m.map.find(key);
        if (it != m.map.end()) return it->second;
      }
      env = m.env;
    }
    Selection s = decide(problem, requested, variant_name, p, env, device);
    bool first_time = false;
    {
      std::unique_lock<std::shared_mutex> lk(m.mu);
      if (m.generation != gen) {  // the tune cache changed: every memoized decision is stale
        m.map.clear();
        m.generation = gen;
      }
      if (m.map.size() >= kMemoCapacity) m.map.clear();
      first_time = m.map.emplace(key, s).second;
    }
    if (first_time && env.log) {
      std::fprintf(stderr, "attnforge: select %s -> %s: %s\n", describe_key(key).c_str(),
                   s.variant ? s.variant->name : attnforge_status_string(s.status), s.reason.c_str());
    }
    return s;
  } catch (const std::exception& e) {
    return error(ATTNFORGE_INTERNAL, std::string("selection failed: ") + e.what());
  }
}

void select_reset() {
  Memo& m = memo();
  {
    std::unique_lock<std::shared_mutex> lk(m.mu);
    m.map.clear();
    m.env = read_env();
  }
  tune_lookup_reload();
}

size_t select_memo_size() {
  Memo& m = memo();
  std::shared_lock<std::shared_mutex> lk(m.mu);
  return m.map.size();
}

}  // namespace attnforge
