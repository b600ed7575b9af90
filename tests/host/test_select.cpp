// Host tests of backend selection (runtime/src/select.cpp) through the C API: the order of the
// rules and the reason each gives, the tune-cache rule (exact, nearest, passed-over winners), the
// memory budget, memoization (thread-safe) and ATTNFORGE_LOG. Nothing here touches a GPU: the
// tensors' addresses are never dereferenced by selection.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "attnforge/attnforge.h"
#include "gpu.hpp"
#include "select.hpp"
#include "tune_lookup.hpp"

namespace attnforge {
namespace {

void* const kFake = reinterpret_cast<void*>(uintptr_t(1) << 40);  // never dereferenced

attnforge_tensor dense(attnforge_dtype t, int64_t a, int64_t b, int64_t c, int64_t d) {
  attnforge_tensor x{};
  x.data = kFake;
  x.dtype = t;
  x.rank = 4;
  int64_t s[4] = {a, b, c, d};
  for (int i = 0; i < 4; ++i) x.sizes[i] = s[i];
  x.strides[3] = 1;
  for (int i = 2; i >= 0; --i) x.strides[i] = x.strides[i + 1] * x.sizes[i + 1];
  return x;
}

struct Shape {
  int b = 2, sq = 256, sk = 256, hq = 4, hkv = 4, d = 64;
  attnforge_dtype dtype = ATTNFORGE_BF16;
  const char* mask = "causal";
  bool bwd = false;
};

attnforge_args make_args(const Shape& s) {
  attnforge_args a;
  attnforge_args_init(&a);
  a.q = dense(s.dtype, s.b, s.sq, s.hq, s.d);
  a.k = dense(s.dtype, s.b, s.sk, s.hkv, s.d);
  a.v = a.k;
  a.o = a.q;
  a.mask.kind = s.mask;
  if (s.bwd) {
    a.lse = attnforge_tensor{};
    a.lse.data = kFake;
    a.lse.dtype = ATTNFORGE_F32;
    a.lse.rank = 3;
    a.lse.sizes[0] = s.b, a.lse.sizes[1] = s.hq, a.lse.sizes[2] = s.sq;
    a.lse.strides[2] = 1, a.lse.strides[1] = s.sq, a.lse.strides[0] = int64_t(s.hq) * s.sq;
    a.d_o = a.q;
    a.dq = a.q;
    a.dk = a.k;
    a.dv = a.k;
  }
  return a;
}

struct Choice {
  attnforge_status status;
  attnforge_backend backend;
  std::string variant, reason;
};

Choice choose(const attnforge_args& a, bool bwd = false) {
  Choice c{};
  char variant[128] = {0}, reason[2048] = {0};
  c.status = attnforge_select_backend(&a, bwd ? 1 : 0, &c.backend, variant, sizeof variant, reason, sizeof reason);
  c.variant = variant;
  c.reason = reason;
  return c;
}

std::vector<std::string> variant_names() {
  std::vector<std::string> v;
  for (int i = 0; i < attnforge_variant_count(); ++i) v.emplace_back(attnforge_variant_name(i));
  return v;
}

// The first compiled variant whose name starts with `prefix` (e.g. "flash_fwd_bf16_hd64_causal_") and
// that runs on any device (not an sm_90a-only one).
std::optional<std::string> find_prefix(const std::string& prefix) {
  for (const auto& n : variant_names())
    if (n.rfind(prefix, 0) == 0 && !n.ends_with("_sm90a")) return n;
  return std::nullopt;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// Scratch the C API would allocate for the call with this exact variant (workspace_size adds 256
// bytes of alignment slack to a non-zero total).
size_t scratch_of(attnforge_args a, const std::string& variant, bool bwd) {
  a.variant = variant.c_str();
  a.backend = ATTNFORGE_BACKEND_AUTO;
  size_t bytes = 0;
  EXPECT_EQ(attnforge_workspace_size(&a, bwd ? 1 : 0, &bytes), ATTNFORGE_OK) << attnforge_last_error();
  return bytes ? bytes - 256 : 0;
}

class SelectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* e : {"ATTNFORGE_BACKEND", "ATTNFORGE_DEBUG", "ATTNFORGE_LOG"}) ::unsetenv(e);
    // Never read the user's real cache from a test.
    ::setenv("ATTNFORGE_TUNE_CACHE", "/nonexistent/attnforge-test/tune.json", 1);
    select_reset();
    tune_lookup_disable("host test");
    flash_ = find_prefix("flash_fwd_bf16_hd64_causal_");
    fused_ = find_prefix("fused_fwd_bf16_hd64_causal_");
    unfused_ = find_prefix("unfused_fwd_bf16_hdany_causal_");
  }
  void TearDown() override {
    for (const char* e : {"ATTNFORGE_BACKEND", "ATTNFORGE_DEBUG", "ATTNFORGE_LOG", "ATTNFORGE_TUNE_CACHE"})
      ::unsetenv(e);
    select_reset();
  }
  bool have_all_three() const { return flash_ && fused_ && unfused_; }
  // Some backend serves the default shape (bf16, hd64, causal) in that direction.
  static bool have_any(bool bwd) {
    const char* dir = bwd ? "bwd" : "fwd";
    for (const char* b : {"flash", "fused"})
      if (find_prefix(std::string(b) + "_" + dir + "_bf16_hd64_causal_")) return true;
    return find_prefix(std::string("unfused_") + dir + "_bf16_hdany_causal_").has_value();
  }
  std::optional<std::string> flash_, fused_, unfused_;
};

// GTEST_SKIP returns from the function it is in, so the check is a macro in the test body (a helper
// function that skipped let the test run on and fail in builds filtered to fewer backends).
#define REQUIRE_ALL_THREE()                                                                  \
  do {                                                                                       \
    if (!have_all_three())                                                                   \
      GTEST_SKIP() << "this build lacks a bf16 hd64 causal forward variant of every backend"; \
  } while (0)

// The tests below that run the heuristic on the default shape need some variant for it.
#define REQUIRE_ANY(bwd)                                                                               \
  do {                                                                                                 \
    if (!have_any(false) || ((bwd) && !have_any(true)))                                                \
      GTEST_SKIP() << "this build has no bf16 hd64 causal " << ((bwd) ? "forward and backward" : "forward") \
                   << " variant of any backend";                                                        \
  } while (0)

// ---- rule order -----------------------------------------------------------------------------------

TEST_F(SelectTest, ExplicitVariantBeatsExplicitBackend) {
  REQUIRE_ALL_THREE();
  attnforge_args a = make_args({});
  a.variant = unfused_->c_str();
  a.backend = ATTNFORGE_BACKEND_FLASH;
  Choice c = choose(a);
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_EQ(c.variant, *unfused_);
  EXPECT_TRUE(contains(c.reason, "variant requested explicitly")) << c.reason;
}

TEST_F(SelectTest, ExplicitVariantThatCannotRunSaysWhy) {
  REQUIRE_ALL_THREE();
  Shape s;
  s.d = 32;  // the hd64 variant cannot serve head_dim 32
  attnforge_args a = make_args(s);
  a.variant = flash_->c_str();
  Choice c = choose(a);
  EXPECT_EQ(c.status, ATTNFORGE_UNSUPPORTED);
  EXPECT_TRUE(contains(c.reason, "head_dim is 64, the call's is 32")) << c.reason;
  a.variant = "flash_fwd_bf16_hd64_causal_m1n1w1s1";
  EXPECT_EQ(choose(a).status, ATTNFORGE_INVALID_ARGUMENT);
}

// An sm_90a-only variant (tile arch "sm90a") runs where the device is sm_90 and is refused, with the
// reason, everywhere else (a host without a GPU included).
TEST_F(SelectTest, Sm90aVariantRunsOnlyOnSm90) {
  std::optional<std::string> ws;
  for (const auto& n : variant_names())
    if (n.rfind("flash_fwd_bf16_hd64_causal_", 0) == 0 && n.ends_with("_sm90a")) ws = n;
  if (!ws) GTEST_SKIP() << "this build has no sm90a flash bf16 hd64 causal forward";
  attnforge_args a = make_args({});
  a.variant = ws->c_str();
  const Choice c = choose(a);
  const bool sm90 = attnforge::test::device_cc_major() == 9;
  if (sm90) {
    EXPECT_EQ(c.status, ATTNFORGE_OK) << c.reason;
    EXPECT_EQ(c.variant, *ws);
  } else {
    EXPECT_EQ(c.status, ATTNFORGE_UNSUPPORTED);
    EXPECT_TRUE(contains(c.reason, "it is built for sm_90a")) << c.reason;
  }
}

TEST_F(SelectTest, ExplicitBackendBeatsEnvironment) {
  REQUIRE_ALL_THREE();
  ::setenv("ATTNFORGE_BACKEND", "unfused", 1);
  select_reset();
  attnforge_args a = make_args({});
  a.backend = ATTNFORGE_BACKEND_FLASH;
  Choice c = choose(a);
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_EQ(c.backend, ATTNFORGE_BACKEND_FLASH);
  EXPECT_TRUE(contains(c.reason, "backend flash requested explicitly")) << c.reason;
}

TEST_F(SelectTest, EnvironmentBeatsDebugAndHeuristic) {
  REQUIRE_ALL_THREE();
  ::setenv("ATTNFORGE_BACKEND", "flash", 1);
  ::setenv("ATTNFORGE_DEBUG", "1", 1);
  select_reset();
  Choice c = choose(make_args({}));
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_EQ(c.backend, ATTNFORGE_BACKEND_FLASH);
  EXPECT_TRUE(contains(c.reason, "ATTNFORGE_BACKEND=flash")) << c.reason;
}

TEST_F(SelectTest, BadEnvironmentIsAnError) {
  REQUIRE_ANY(false);
  ::setenv("ATTNFORGE_BACKEND", "cudnn", 1);
  select_reset();
  Choice c = choose(make_args({}));
  EXPECT_EQ(c.status, ATTNFORGE_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(c.reason, "got 'cudnn'")) << c.reason;
  ::setenv("ATTNFORGE_BACKEND", "auto", 1);  // auto = no choice
  select_reset();
  EXPECT_EQ(choose(make_args({})).status, ATTNFORGE_OK);
}

TEST_F(SelectTest, DebugBeatsTuneCache) {
  REQUIRE_ALL_THREE();
  attnforge_args a = make_args({});
  tune::Entry e;
  e.winner = *flash_;
  e.times_ms = {{*flash_, 1.0}};
  ::setenv("ATTNFORGE_DEBUG", "1", 1);
  select_reset();  // re-reads the environment (and drops the entries: set them again)
  tune_lookup_use_entries({{tune::Key::of(Direction::fwd, DType::bf16, 2, 256, 256, 4, 4, 64, "causal"), e}}, "test");
  Choice c = choose(a);
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_EQ(c.backend, ATTNFORGE_BACKEND_UNFUSED);
  EXPECT_TRUE(contains(c.reason, "ATTNFORGE_DEBUG=1")) << c.reason;
}

TEST_F(SelectTest, TuneCacheExactKeyBeatsHeuristic) {
  REQUIRE_ALL_THREE();
  Shape s;
  s.sq = s.sk = 3000;  // the heuristic would say flash here
  Choice h = choose(make_args(s));
  ASSERT_EQ(h.status, ATTNFORGE_OK) << h.reason;
  ASSERT_EQ(h.backend, ATTNFORGE_BACKEND_FLASH) << h.reason;

  tune::Entry e;
  e.winner = *unfused_;  // the tuner measured unfused fastest (say)
  e.times_ms = {{*unfused_, 0.5}, {*flash_, 0.7}};
  tune_lookup_use_entries({{tune::Key::of(Direction::fwd, DType::bf16, 2, 3000, 3000, 4, 4, 64, "causal"), e}},
                          "test-cache");
  Choice c = choose(make_args(s));
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_EQ(c.variant, *unfused_);
  EXPECT_TRUE(contains(c.reason, "exact key fwd|bf16|hq4|hkv4|d64|causal|sq4096|sk4096|b2")) << c.reason;
  EXPECT_TRUE(contains(c.reason, "runner-up " + *flash_)) << c.reason;
}

TEST_F(SelectTest, TuneCacheNearestBucket) {
  REQUIRE_ALL_THREE();
  tune::Entry e;
  e.winner = *unfused_;
  e.times_ms = {{*unfused_, 0.5}};
  // Tuned at Sq = Sk = 1024, B = 2; the call has Sq = Sk = 3000 (bucket 4096): 2 + 2 steps away.
  tune_lookup_use_entries({{tune::Key::of(Direction::fwd, DType::bf16, 2, 1024, 1024, 4, 4, 64, "causal"), e}}, "t");
  Shape s;
  s.sq = s.sk = 3000;
  Choice c = choose(make_args(s));
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_EQ(c.variant, *unfused_);
  EXPECT_TRUE(contains(c.reason, "nearest bucket fwd|bf16|hq4|hkv4|d64|causal|sq1024|sk1024|b2")) << c.reason;
  // Another class (other head count) does not borrow it: heuristic.
  s.hq = s.hkv = 8;
  Choice o = choose(make_args(s));
  EXPECT_TRUE(contains(o.reason, "heuristic")) << o.reason;
  EXPECT_TRUE(contains(o.reason, "no entry for fwd|bf16|hq8|hkv8")) << o.reason;
}

TEST_F(SelectTest, TuneCacheWinnerThatCannotRunIsPassedOver) {
  REQUIRE_ALL_THREE();
  tune::Entry e;
  e.winner = "flash_fwd_bf16_hd64_causal_m999n1w1s1";  // not in this build (edited cache, say)
  e.times_ms = {{e.winner, 0.1}, {*unfused_, 0.9}, {*flash_, 0.5}};
  tune_lookup_use_entries({{tune::Key::of(Direction::fwd, DType::bf16, 2, 256, 256, 4, 4, 64, "causal"), e}}, "t");
  Choice c = choose(make_args({}));
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_EQ(c.variant, *flash_);  // the fastest remaining
  EXPECT_TRUE(contains(c.reason, "m999n1w1s1 is not in this build")) << c.reason;
}

TEST_F(SelectTest, TuneCacheGuidesTheTileOfAForcedBackend) {
  REQUIRE_ALL_THREE();
  std::vector<std::string> flash_tiles;
  for (const auto& n : variant_names())  // tiles that run on any device (not the sm_90a-only ones)
    if (n.rfind("flash_fwd_bf16_hd64_causal_", 0) == 0 && !n.ends_with("_sm90a")) flash_tiles.push_back(n);
  if (flash_tiles.size() < 2) GTEST_SKIP() << "this build has one flash bf16 hd64 causal forward tile";
  tune::Entry e;
  e.winner = *unfused_;
  e.times_ms = {{*unfused_, 0.5}, {flash_tiles[0], 0.9}, {flash_tiles[1], 0.7}};
  tune_lookup_use_entries({{tune::Key::of(Direction::fwd, DType::bf16, 2, 3000, 3000, 4, 4, 64, "causal"), e}}, "t");
  Shape s;
  s.sq = s.sk = 3000;
  attnforge_args a = make_args(s);
  a.backend = ATTNFORGE_BACKEND_FLASH;
  Choice c = choose(a);
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_EQ(c.variant, flash_tiles[1]);  // the faster flash tile, not the generator's first
  EXPECT_TRUE(contains(c.reason, "fastest tile")) << c.reason;
}

TEST_F(SelectTest, HeuristicReasonSaysWhyTheCacheDidNotDecide) {
  REQUIRE_ANY(false);
  Choice c = choose(make_args({}));
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_TRUE(contains(c.reason, "heuristic")) << c.reason;
  EXPECT_TRUE(contains(c.reason, "disabled (host test)")) << c.reason;
}

// The measured rule (H100 training grid): flash at every length, forward and backward; fused only
// where flash cannot serve (here: P requested) and the key row fits; unfused beyond that.
TEST_F(SelectTest, HeuristicIsFlashAtEveryLengthThenFusedThenUnfused) {
  REQUIRE_ALL_THREE();
  for (int sk : {256, 4096}) {
    Shape s;
    s.sq = s.sk = sk;
    Choice c = choose(make_args(s));
    ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
    EXPECT_EQ(c.backend, ATTNFORGE_BACKEND_FLASH) << c.reason;
    EXPECT_TRUE(contains(c.reason, "heuristic: default")) << c.reason;
  }
  Shape s;
  attnforge_args a = make_args(s);  // Sk = 256: the fused key row fits
  a.weights = dense(s.dtype, s.b, s.hq, s.sq, s.sk);
  Choice w = choose(a);
  EXPECT_EQ(w.backend, ATTNFORGE_BACKEND_FUSED) << w.reason;
  s.sq = s.sk = 4096;  // beyond every fused variant's key row: unfused, saying why
  a = make_args(s);
  a.weights = dense(s.dtype, s.b, s.hq, s.sq, s.sk);
  Choice u = choose(a);
  EXPECT_EQ(u.backend, ATTNFORGE_BACKEND_UNFUSED) << u.reason;
  EXPECT_TRUE(contains(u.reason, "supports seqlen_k up to")) << u.reason;
}

// Flash and fused put heads and sequences on grid y / z (at most 65535 each): a call with more goes to
// unfused under AUTO, and an explicit flash call is refused with the reason, before any launch.
TEST_F(SelectTest, GridLimitsSendManyHeadsOrSequencesToUnfused) {
  REQUIRE_ALL_THREE();
  Shape many_heads;
  many_heads.b = 1, many_heads.sq = many_heads.sk = 4, many_heads.hq = many_heads.hkv = 70000;
  attnforge_args a = make_args(many_heads);
  // 70000 sequences of 2 tokens, packed (varlen; cu_seqlens are never read by selection).
  attnforge_args v = make_args(Shape{});
  v.q = dense(ATTNFORGE_BF16, 1, 140000, 4, 64);
  v.k = v.v = v.q;
  v.o = v.q;
  for (attnforge_tensor* t : {&v.q, &v.k, &v.v, &v.o}) {  // (total, H, D)
    t->rank = 3;
    for (int i = 0; i < 3; ++i) t->sizes[i] = t->sizes[i + 1], t->strides[i] = t->strides[i + 1];
  }
  v.cu_seqlens_q = v.cu_seqlens_k = static_cast<const int32_t*>(kFake);
  v.batch_varlen = 70000;
  v.max_seqlen_q = v.max_seqlen_k = 2;
  for (attnforge_args* x : {&a, &v}) {
    Choice c = choose(*x);
    ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
    EXPECT_EQ(c.backend, ATTNFORGE_BACKEND_UNFUSED) << c.reason;
    x->backend = ATTNFORGE_BACKEND_FLASH;
    c = choose(*x);
    EXPECT_EQ(c.status, ATTNFORGE_UNSUPPORTED) << c.reason;
    EXPECT_TRUE(contains(c.reason, "at most 65535 of each")) << c.reason;
    x->backend = ATTNFORGE_BACKEND_AUTO;
    x->variant = flash_->c_str();
    c = choose(*x);
    EXPECT_EQ(c.status, ATTNFORGE_UNSUPPORTED) << c.reason;
    EXPECT_TRUE(contains(c.reason, "at most 65535 of each")) << c.reason;
  }
}

// The tile preference measured on the H200: flash backward at D <= 64 takes m64n128w4.
TEST_F(SelectTest, HeuristicTilePreferenceForFlashBackward) {
  std::vector<std::string> tiles;
  for (const auto& n : variant_names())
    if (n.rfind("flash_bwd_bf16_hd64_causal_", 0) == 0) tiles.push_back(n);
  if (tiles.size() < 2 || !find_prefix("flash_bwd_bf16_hd64_causal_m64n128w4"))
    GTEST_SKIP() << "this build lacks two flash bf16 hd64 causal backward tiles incl. m64n128w4";
  // On a Hopper GPU (the host tests also run on the device machine) the wgmma kernel's row applies.
  const bool hopper =
      attnforge::test::device_cc_major() == 9 && find_prefix("flash_bwd_bf16_hd64_causal_m64n64w4s1");
  const std::string tile = hopper ? "m64n64w4s1" : "m64n128w4";
  Shape s;
  s.bwd = true;
  s.sq = s.sk = 1024;  // causal from 2048 on Hopper: the 128-query tile (HopperBackwardTilesFollowTheMeasuredRows)
  Choice c = choose(make_args(s), true);
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_EQ(c.variant, *find_prefix("flash_bwd_bf16_hd64_causal_" + tile)) << c.reason;
  EXPECT_TRUE(contains(c.reason, "tile: " + tile)) << c.reason;
  // An explicit backend without a tune cache follows the same preference.
  attnforge_args a = make_args(s);
  a.backend = ATTNFORGE_BACKEND_FLASH;
  EXPECT_EQ(choose(a, true).variant, c.variant);
}

// One expected flash tile per (head dim, Sq, Sk, mask, direction) on an sm_90 device.
struct HopperRow {
  int d, sq, sk;
  const char* mask;
  const char* tile;
  bool bwd = false;
};
std::string hopper_variant(const HopperRow& r) {
  return std::string(r.bwd ? "flash_bwd_bf16_hd" : "flash_fwd_bf16_hd") + std::to_string(r.d) + "_" + r.mask +
         "_" + r.tile;
}
Choice choose_flash(const HopperRow& r) {
  Shape s;
  s.d = r.d, s.hq = s.hkv = std::max(1, 2048 / r.d), s.b = 1, s.sq = r.sq, s.sk = r.sk, s.mask = r.mask;
  s.bwd = r.bwd;
  attnforge_args a = make_args(s);
  a.backend = ATTNFORGE_BACKEND_FLASH;
  if (std::string(r.mask) == "window") a.mask.scalars[0] = 256, a.mask.scalars[1] = 0;
  return choose(a, r.bwd);
}
// A macro, as REQUIRE_ALL_THREE: GTEST_SKIP must return from the test body. Skips unless every named
// variant is in the build.
#define EXPECT_HOPPER_ROWS(rows)                                                                      \
  do {                                                                                                       \
    if (attnforge::test::device_cc_major() != 9) GTEST_SKIP() << "no Hopper GPU: the sm_90 rows do not apply"; \
    const auto names = variant_names();                                                                      \
    for (const HopperRow& r : rows)                                                                          \
      if (std::find(names.begin(), names.end(), hopper_variant(r)) == names.end())                           \
        GTEST_SKIP() << hopper_variant(r) << " is not in this build";                                        \
    for (const HopperRow& r : rows) {                                                                        \
      const Choice c = choose_flash(r);                                                              \
      ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;                                                         \
      EXPECT_EQ(c.variant, hopper_variant(r)) << c.reason;                                                   \
    }                                                                                                        \
  } while (0)

// The forward rows measured on the H200 (2026-11-30; m192 s3 causal from 4096: 2026-12-01): per head
// dim, mask and S_k the Hopper tile that led. Only on a Hopper GPU with the gpu.toml / default.toml tiles
// built; skipped otherwise.
TEST_F(SelectTest, HopperForwardTilesFollowTheMeasuredRows) {
  const HopperRow rows[] = {
      {64, 2048, 2048, "none", "m192n128w16s2_sm90a"},   {64, 8192, 8192, "window", "m192n128w16s2_sm90a"},
      {64, 4096, 4096, "causal", "m192n128w16s3_sm90a"}, {64, 16384, 16384, "causal", "m192n128w16s3_sm90a"},
      {64, 2048, 2048, "causal", "m192n128w16s2_sm90a"}, {64, 16384, 16384, "none", "m192n128w16s2_sm90a"},
      {64, 1024, 1024, "causal", "m128n128w4s2"},        {64, 1024, 1024, "none", "m128n128w4s2"},
      {128, 8192, 8192, "causal", "m128n128w12s2_sm90a"}, {128, 16384, 16384, "none", "m128n128w12s2_sm90a"},
      {128, 4096, 4096, "none", "m128n128w12s2_sm90a"},  {128, 1, 8192, "none", "m128n128w12s2_sm90a"},  // decode
  };
  EXPECT_HOPPER_ROWS(rows);
}

// Head dims 192 / 256 (v14, v40, v50): D 192's 112-key tile causal from S_k 4096 and without a mask from
// 8192; D 256's 64-key tile everywhere (80 keys lost its mask-free rows to v50); the 64-key tile below, for
// window masks and for decode.
TEST_F(SelectTest, HopperWideHeadTilesFollowTheMeasuredRows) {
  const HopperRow rows[] = {
      {192, 8192, 8192, "none", "m128n112w12s2_sm90a"},  {192, 4096, 4096, "causal", "m128n112w12s2_sm90a"},
      {192, 4096, 4096, "none", "m128n64w12s2_sm90a"},   {192, 2048, 2048, "none", "m128n64w12s2_sm90a"},
      {192, 1, 8192, "none", "m128n64w12s2_sm90a"},      {192, 8192, 8192, "window", "m128n64w12s2_sm90a"},
      {256, 16384, 16384, "causal", "m128n64w12s2_sm90a"}, {256, 16384, 16384, "none", "m128n64w12s2_sm90a"},
      {256, 8192, 8192, "none", "m128n64w12s2_sm90a"},   {256, 2048, 2048, "causal", "m128n64w12s2_sm90a"},
  };
  EXPECT_HOPPER_ROWS(rows);
}

// The backward rows at D 64 (H200, 2026-11-30): the 128-query tile without a mask from S_k 1024 and
// causal from 2048, the 64-query warp-specialized tile for window masks from 8192, m64n64w4s1 below.
TEST_F(SelectTest, HopperBackwardTilesFollowTheMeasuredRows) {
  const HopperRow rows[] = {
      {64, 1024, 1024, "none", "m128n128w12s2_sm90a", true},   {64, 8192, 8192, "none", "m128n128w12s2_sm90a", true},
      {64, 2048, 2048, "causal", "m128n128w12s2_sm90a", true}, {64, 1024, 1024, "causal", "m64n64w4s1", true},
      {64, 8192, 8192, "window", "m64n128w12s2_sm90a", true},  {64, 2048, 2048, "window", "m64n64w4s1", true},
      {64, 512, 512, "none", "m64n64w4s1", true},
  };
  EXPECT_HOPPER_ROWS(rows);
}

// Head dims 192 / 256 backward (2026-11-30, eleventh session): the split step, the first bwd tile there in
// default.toml, for every tensor-free mask and length (no select row: the generator's order).
TEST_F(SelectTest, HopperWideHeadBackwardTakesTheSplitStep) {
  const HopperRow rows[] = {
      {192, 4096, 4096, "none", "m64n64w12s2_sm90a", true}, {192, 1024, 1024, "causal", "m64n64w12s2_sm90a", true},
      {256, 512, 512, "none", "m64n64w12s2_sm90a", true},   {256, 16384, 16384, "causal", "m64n64w12s2_sm90a", true},
      {256, 2048, 2048, "window", "m64n64w12s2_sm90a", true},
  };
  EXPECT_HOPPER_ROWS(rows);
}

// Fused forward on Hopper (2026-12-01): the streamed key row at D 64 / 128, every mask and length it
// takes, with the weights (auto) and without (backend fused).
TEST_F(SelectTest, HopperFusedForwardTakesTheStreamedTile) {
  if (attnforge::test::device_cc_major() != 9) GTEST_SKIP() << "no Hopper GPU: the sm_90 rows do not apply";
  const auto names = variant_names();
  int checked = 0;
  for (int d : {64, 128})
    for (const char* mask : {"none", "causal"})
      for (int sk : {1, 512, 1024})
        for (bool weights : {false, true}) {
          const std::string want = "fused_fwd_bf16_hd" + std::to_string(d) + "_" + mask + "_m128n1024w12s2_sm90a";
          if (std::find(names.begin(), names.end(), want) == names.end()) continue;
          Shape s;
          s.d = d, s.sq = 300, s.sk = sk, s.mask = mask;
          attnforge_args a = make_args(s);
          if (weights) a.weights = dense(s.dtype, s.b, s.hq, s.sq, s.sk);
          else a.backend = ATTNFORGE_BACKEND_FUSED;
          const Choice c = choose(a);
          ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
          EXPECT_EQ(c.variant, want) << c.reason;
          ++checked;
        }
  if (checked == 0) GTEST_SKIP() << "no streamed fused variant in this build";
}

TEST_F(SelectTest, WeightsNeverGoToFlash) {
  Shape s;
  attnforge_args a = make_args(s);
  a.weights = dense(s.dtype, s.b, s.hq, s.sq, s.sk);
  Choice c = choose(a);
  if (!fused_ && !unfused_) {  // a build filtered to flash: refused, not handed to flash
    EXPECT_EQ(c.status, ATTNFORGE_UNSUPPORTED) << c.reason;
    EXPECT_EQ(c.variant, "") << c.reason;
    return;
  }
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_NE(c.backend, ATTNFORGE_BACKEND_FLASH) << c.reason;
  EXPECT_TRUE(contains(c.reason, "attention weights requested")) << c.reason;
}

// The heuristic never picks a backend lacking the head dim: every head dim from 1 to 1024 that
// validation accepts gets a variant of exactly that head dim or an any-head-dim one.
TEST_F(SelectTest, HeuristicNeverPicksAMissingHeadDim) {
  int checked = 0;
  for (int d : {1, 8, 16, 32, 40, 64, 80, 96, 100, 128, 160, 192, 256, 512, 1024})
    for (const char* mask : {"none", "causal", "window"})
      for (attnforge_dtype t : {ATTNFORGE_F32, ATTNFORGE_F16, ATTNFORGE_BF16})
        for (bool bwd : {false, true})
          for (int sk : {128, 4096}) {
            Shape s;
            s.d = d, s.mask = mask, s.dtype = t, s.bwd = bwd, s.sq = 128, s.sk = sk;
            Choice c = choose(make_args(s), bwd);
            if (c.status != ATTNFORGE_OK) {
              // Only "nothing compiled for this" is acceptable, and it must say so.
              EXPECT_EQ(c.status, ATTNFORGE_UNSUPPORTED) << c.reason;
              continue;
            }
            ++checked;
            EXPECT_TRUE(contains(c.variant, "_hd" + std::to_string(d) + "_") || contains(c.variant, "_hdany_"))
                << "D=" << d << " picked " << c.variant;
            EXPECT_TRUE(contains(c.variant, std::string(bwd ? "_bwd_" : "_fwd_"))) << c.variant;
            EXPECT_TRUE(contains(c.variant, std::string("_") + mask + "_")) << c.variant;
          }
  EXPECT_GT(checked, 0);
}

// fp32 inputs go to unfused (the reworked fp32 fused kernel measured 2.6–5× slower), with or without P, in
// both directions; fused fp32 only when unfused's workspace does not fit the memory budget.
TEST_F(SelectTest, Fp32GoesToUnfusedAndToFusedOnlyUnderATightBudget) {
  const auto fused_f32 = find_prefix("fused_fwd_f32_hd64_causal_");
  if (!fused_f32 || !find_prefix("unfused_fwd_f32_hdany_causal_"))
    GTEST_SKIP() << "needs fp32 fused and unfused hd64 causal variants (build filter)";
  for (bool bwd : {false, true})
    for (bool weights : {false, true}) {
      if (bwd && weights) continue;
      Shape s;
      s.dtype = ATTNFORGE_F32, s.bwd = bwd;
      attnforge_args a = make_args(s);
      a.lse.dtype = ATTNFORGE_F32;
      if (weights) a.weights = dense(ATTNFORGE_F32, s.b, s.hq, s.sq, s.sk);
      Choice c = choose(a, bwd);
      ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
      EXPECT_EQ(c.backend, ATTNFORGE_BACKEND_UNFUSED) << c.reason;
      EXPECT_TRUE(contains(c.reason, "fp32 inputs")) << c.reason;
      if (weights) continue;
      // Room for fused (its forward scratch is at most the temporary LSE; its fp32 backward none),
      // not for unfused's (B, Hq, Sq, Sk) scores.
      const size_t unfused_need = scratch_of(a, c.variant, bwd);
      a.memory_budget = unfused_need / 2;
      c = choose(a, bwd);
      ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
      EXPECT_EQ(c.backend, ATTNFORGE_BACKEND_FUSED) << c.reason;
      EXPECT_LE(scratch_of(a, c.variant, bwd), a.memory_budget) << c.variant;
    }
}

// With a memory budget, every pick's scratch fits it; with a budget nothing fits, a clear error.
TEST_F(SelectTest, HeuristicNeverExceedsTheMemoryBudget) {
  REQUIRE_ANY(true);
  int checked = 0, refused = 0;
  for (bool bwd : {false, true})
    for (int sk : {256, 2048})
      for (size_t budget : {size_t(1), size_t(1) << 16, size_t(1) << 20, size_t(1) << 24, size_t(1) << 28,
                            size_t(1) << 34}) {
        Shape s;
        s.bwd = bwd, s.sq = 512, s.sk = sk;
        attnforge_args a = make_args(s);
        a.memory_budget = budget;
        Choice c = choose(a, bwd);
        if (c.status != ATTNFORGE_OK) {
          EXPECT_EQ(c.status, ATTNFORGE_UNSUPPORTED) << c.reason;
          EXPECT_TRUE(contains(c.reason, "memory_budget")) << c.reason;
          ++refused;
          continue;
        }
        ++checked;
        EXPECT_LE(scratch_of(a, c.variant, bwd), budget) << c.variant << " budget " << budget;
      }
  EXPECT_GT(checked, 0);
  EXPECT_GT(refused, 0);  // a 1-byte budget cannot hold a forward's temporary LSE
}

TEST_F(SelectTest, BudgetExcludesATunedWinnerThatDoesNotFit) {
  REQUIRE_ALL_THREE();
  Shape s;
  s.sq = s.sk = 2048;
  attnforge_args a = make_args(s);
  const size_t unfused_need = scratch_of(a, *unfused_, false);
  const size_t flash_need = scratch_of(a, *flash_, false);
  ASSERT_GT(unfused_need, flash_need);  // unfused materialises S and P
  tune::Entry e;
  e.winner = *unfused_;
  e.times_ms = {{*unfused_, 0.5}, {*flash_, 0.6}};
  tune_lookup_use_entries({{tune::Key::of(Direction::fwd, DType::bf16, 2, 2048, 2048, 4, 4, 64, "causal"), e}}, "t");
  a.memory_budget = flash_need;  // room for flash, not for unfused
  Choice c = choose(a);
  ASSERT_EQ(c.status, ATTNFORGE_OK) << c.reason;
  EXPECT_EQ(c.variant, *flash_);
  EXPECT_TRUE(contains(c.reason, "memory_budget")) << c.reason;
  // The budget applies to AUTO only: an explicit backend ignores it.
  a.backend = ATTNFORGE_BACKEND_UNFUSED;
  EXPECT_EQ(choose(a).backend, ATTNFORGE_BACKEND_UNFUSED);
}

// ---- memoization and logging -------------------------------------------------------------------------

TEST_F(SelectTest, DecisionsAreMemoizedPerKey) {
  const size_t before = select_memo_size();
  Choice a = choose(make_args({}));
  EXPECT_EQ(select_memo_size(), before + 1);
  Choice b = choose(make_args({}));
  EXPECT_EQ(select_memo_size(), before + 1);
  EXPECT_EQ(a.variant, b.variant);
  EXPECT_EQ(a.reason, b.reason);
  Shape other;
  other.sq = 100;
  choose(make_args(other));
  EXPECT_EQ(select_memo_size(), before + 2);
}

TEST_F(SelectTest, NewTuneEntriesInvalidateTheMemo) {
  REQUIRE_ALL_THREE();
  Shape s;
  s.sq = s.sk = 3000;
  ASSERT_EQ(choose(make_args(s)).backend, ATTNFORGE_BACKEND_FLASH);
  tune::Entry e;
  e.winner = *unfused_;
  e.times_ms = {{*unfused_, 0.5}};
  tune_lookup_use_entries({{tune::Key::of(Direction::fwd, DType::bf16, 2, 3000, 3000, 4, 4, 64, "causal"), e}}, "t");
  EXPECT_EQ(choose(make_args(s)).variant, *unfused_);
}

TEST_F(SelectTest, ConcurrentSelectionsAgree) {
  std::vector<Shape> shapes;
  for (int sk : {64, 256, 1024, 4096})
    for (int d : {32, 64, 128}) {
      Shape s;
      s.sk = sk, s.d = d;
      shapes.push_back(s);
    }
  std::vector<Choice> expect;
  for (const auto& s : shapes) expect.push_back(choose(make_args(s)));
  select_reset();
  tune_lookup_disable("host test");
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const size_t k = size_t(i * 7 + t) % shapes.size();
        Choice c = choose(make_args(shapes[k]));
        if (c.status != expect[k].status || c.variant != expect[k].variant || c.reason != expect[k].reason) ++mismatches;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(select_memo_size(), shapes.size());
}

TEST_F(SelectTest, LogPrintsEachDistinctDecisionOnce) {
  REQUIRE_ANY(false);
  // stderr into a temporary file for the duration (in-process: no fork after CUDA may be initialised).
  char path[] = "/tmp/attnforge_select_log_XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  std::fflush(stderr);
  const int saved = ::dup(2);
  ::dup2(fd, 2);
  ::setenv("ATTNFORGE_LOG", "1", 1);
  select_reset();
  tune_lookup_disable("host test");
  Shape other;
  other.sq = 100;
  for (int i = 0; i < 5; ++i) {
    choose(make_args({}));
    choose(make_args(other));
  }
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string err;
  char buf[4096];
  ssize_t n;
  ::lseek(fd, 0, SEEK_SET);
  while ((n = ::read(fd, buf, sizeof buf)) > 0) err.append(buf, size_t(n));
  ::close(fd);
  ::unlink(path);
  size_t lines = 0;
  for (size_t at = err.find("attnforge: select "); at != std::string::npos; at = err.find("attnforge: select ", at + 1))
    ++lines;
  EXPECT_EQ(lines, 2u) << err;
  EXPECT_TRUE(contains(err, "Sq=256")) << err;
  EXPECT_TRUE(contains(err, "Sq=100")) << err;
  EXPECT_TRUE(contains(err, "heuristic")) << err;
}

}  // namespace
}  // namespace attnforge
