// Host tests of attnforge_estimate (runtime/src/estimate.cpp): availability agrees with what the
// selector accepts, the workspace is the one attnforge_workspace_size reports, FLOPs follow
// DESIGN.md's convention with exact mask counts, and bad arguments are reported, not crashed on.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "attnforge/attnforge.h"
#include "attnforge/attention.hpp"
#include "select.hpp"
#include "tune_lookup.hpp"

namespace {

attnforge_tensor dense(attnforge_dtype t, int64_t a, int64_t b, int64_t c, int64_t d, void* data) {  // contiguous
  return attnforge::Tensor(data, t, {a, b, c, d}).c();
}

// Shapes only: estimates accept NULL data.
attnforge_args shape_args(int b, int sq, int sk, int h, int d, const char* mask, bool bwd) {
  attnforge_args a;
  attnforge_args_init(&a);
  a.q = dense(ATTNFORGE_BF16, b, sq, h, d, nullptr);
  a.k = a.v = dense(ATTNFORGE_BF16, b, sk, h, d, nullptr);
  a.o = a.q;
  if (bwd) {
    a.d_o = a.dq = a.q;
    a.dk = a.dv = a.k;
    a.lse = attnforge_tensor{};
    a.lse.dtype = ATTNFORGE_F32;
    a.lse.rank = 3;
    a.lse.sizes[0] = b, a.lse.sizes[1] = h, a.lse.sizes[2] = sq;
    a.lse.strides[0] = int64_t(h) * sq, a.lse.strides[1] = sq, a.lse.strides[2] = 1;
  }
  a.mask.kind = mask;
  return a;
}

// The same args with placeholder (never dereferenced) addresses, as the selector's C API needs.
attnforge_args with_fake_data(attnforge_args a) {
  void* fake = reinterpret_cast<void*>(uintptr_t(1) << 40);
  for (attnforge_tensor* t : {&a.q, &a.k, &a.v, &a.o, &a.d_o, &a.dq, &a.dk, &a.dv, &a.lse})
    if (t->rank > 0) t->data = fake;
  return a;
}

class EstimateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("ATTNFORGE_TUNE_CACHE", "/nonexistent/attnforge-test/tune.json", 1);
    attnforge::select_reset();
    attnforge::tune_lookup_disable("host test");
  }
  void TearDown() override {
    ::unsetenv("ATTNFORGE_TUNE_CACHE");
    attnforge::select_reset();
  }
};

TEST_F(EstimateTest, OneEstimatePerBackendAgreeingWithTheSelector) {
  bool unfused_built = false;
  for (int i = 0; i < attnforge_variant_count(); ++i)
    unfused_built |= std::string(attnforge_variant_name(i)).rfind("unfused_", 0) == 0;
  if (!unfused_built) GTEST_SKIP() << "this build has no unfused variant (variant filter)";
  for (bool bwd : {false, true})
    for (int s : {128, 700, 4096})
      for (int d : {64, 80}) {
        const attnforge_args a = shape_args(2, s, s, 4, d, "causal", bwd);
        attnforge_backend_estimate e[3];
        int n = 0;
        ASSERT_EQ(attnforge_estimate(&a, bwd, e, 3, &n), ATTNFORGE_OK) << e[0].reason;
        ASSERT_EQ(n, 3);
        EXPECT_EQ(e[0].backend, ATTNFORGE_BACKEND_UNFUSED);
        EXPECT_EQ(e[1].backend, ATTNFORGE_BACKEND_FUSED);
        EXPECT_EQ(e[2].backend, ATTNFORGE_BACKEND_FLASH);
        EXPECT_EQ(e[0].available, 1);  // unfused serves every head dim
        for (int i = 0; i < 3; ++i) {
          // The selector with this backend forced agrees on availability and on the variant.
          attnforge_args f = with_fake_data(a);
          f.backend = e[i].backend;
          attnforge_backend chosen{};
          char variant[128] = {0}, reason[1024] = {0};
          const attnforge_status st =
              attnforge_select_backend(&f, bwd, &chosen, variant, sizeof variant, reason, sizeof reason);
          EXPECT_EQ(st == ATTNFORGE_OK, e[i].available == 1) << e[i].reason << " / " << reason;
          if (!e[i].available) {
            EXPECT_GT(std::string(e[i].reason).size(), 0u);
            EXPECT_EQ(e[i].kernel_launches, 0);
            continue;
          }
          EXPECT_STREQ(e[i].variant, variant);
          // Scratch = what attnforge_workspace_size reports, less its 256 bytes of alignment slack.
          size_t ws = 0;
          f.variant = variant;
          ASSERT_EQ(attnforge_workspace_size(&f, bwd, &ws), ATTNFORGE_OK) << attnforge_last_error();
          EXPECT_EQ(e[i].scratch_bytes, ws ? ws - 256 : 0) << variant;
          EXPECT_LE(e[i].workspace_bytes, e[i].scratch_bytes);
          EXPECT_GT(e[i].device_bytes, e[i].scratch_bytes);  // + the caller's tensors
          EXPECT_GE(e[i].kernel_launches, 1);
        }
        // The FLOPs do not depend on the backend.
        EXPECT_EQ(e[0].flops, e[2].flops);
      }
}

TEST_F(EstimateTest, FlopsFollowTheDesignConvention) {
  attnforge_backend_estimate e[3];
  int n = 0;
  // Non-causal: 4·B·H·S²·D.
  attnforge_args a = shape_args(2, 1024, 1024, 8, 64, "none", false);
  ASSERT_EQ(attnforge_estimate(&a, 0, e, 3, &n), ATTNFORGE_OK);
  EXPECT_DOUBLE_EQ(e[0].flops, 4.0 * 2 * 8 * 1024.0 * 1024 * 64);
  // Causal, Sq = Sk: exactly S(S+1)/2 visible pairs (about half).
  a = shape_args(2, 1024, 1024, 8, 64, "causal", false);
  ASSERT_EQ(attnforge_estimate(&a, 0, e, 3, &n), ATTNFORGE_OK);
  EXPECT_DOUBLE_EQ(e[0].flops, 4.0 * 2 * 8 * (1024.0 * 1025 / 2) * 64);
  // Backward: 2.5× the forward.
  a = shape_args(2, 1024, 1024, 8, 64, "causal", true);
  ASSERT_EQ(attnforge_estimate(&a, 1, e, 3, &n), ATTNFORGE_OK);
  EXPECT_DOUBLE_EQ(e[0].flops, 2.5 * 4.0 * 2 * 8 * (1024.0 * 1025 / 2) * 64);
  // Causal with Sq < Sk (bottom-right): query i sees i + Sk − Sq + 1 keys.
  a = shape_args(1, 2, 5, 1, 64, "causal", false);
  ASSERT_EQ(attnforge_estimate(&a, 0, e, 3, &n), ATTNFORGE_OK);
  EXPECT_DOUBLE_EQ(e[0].flops, 4.0 * 64 * (4 + 5));
  // Window (left 1, right 0), Sq = Sk = 4: rows see 1, 2, 2, 2 keys.
  a = shape_args(1, 4, 4, 1, 64, "window", false);
  a.mask.scalars[0] = 1, a.mask.scalars[1] = 0;
  ASSERT_EQ(attnforge_estimate(&a, 0, e, 3, &n), ATTNFORGE_OK);
  EXPECT_DOUBLE_EQ(e[0].flops, 4.0 * 64 * 7);
}

TEST_F(EstimateTest, TemporaryLseCountsAsScratchOnlyWithoutACallerLse) {
  attnforge_backend_estimate without[3], with[3];
  int n = 0;
  attnforge_args a = shape_args(2, 256, 256, 4, 64, "none", false);
  ASSERT_EQ(attnforge_estimate(&a, 0, without, 3, &n), ATTNFORGE_OK);
  a.lse = attnforge_tensor{};
  a.lse.data = reinterpret_cast<void*>(uintptr_t(1) << 40);
  a.lse.dtype = ATTNFORGE_F32;
  a.lse.rank = 3;
  a.lse.sizes[0] = 2, a.lse.sizes[1] = 4, a.lse.sizes[2] = 256;
  a.lse.strides[0] = 4 * 256, a.lse.strides[1] = 256, a.lse.strides[2] = 1;
  ASSERT_EQ(attnforge_estimate(&a, 0, with, 3, &n), ATTNFORGE_OK);
  const size_t lse_bytes = 2 * 4 * 256 * sizeof(float);
  for (int i = 0; i < 3; ++i) {
    if (!with[i].available) continue;
    EXPECT_EQ(without[i].scratch_bytes, with[i].scratch_bytes + lse_bytes) << with[i].variant;
    EXPECT_EQ(without[i].device_bytes, with[i].device_bytes) << with[i].variant;  // moved, not added
  }
}

TEST_F(EstimateTest, BadArgumentsAreReportedNotCrashedOn) {
  attnforge_backend_estimate e[3];
  int n = 7;
  attnforge_args a = shape_args(2, 256, 256, 4, 64, "none", false);
  a.k.sizes[3] = 32;  // head dims differ
  EXPECT_EQ(attnforge_estimate(&a, 0, e, 3, &n), ATTNFORGE_INVALID_ARGUMENT);
  EXPECT_EQ(n, 0);
  EXPECT_NE(std::string(e[0].reason).find("head_dim"), std::string::npos) << e[0].reason;
  EXPECT_EQ(attnforge_estimate(nullptr, 0, e, 3, &n), ATTNFORGE_INVALID_ARGUMENT);
  a = shape_args(2, 256, 256, 4, 64, "none", false);
  EXPECT_EQ(attnforge_estimate(&a, 0, nullptr, 3, &n), ATTNFORGE_INVALID_ARGUMENT);
  // Capacity smaller than the number of backends: the first ones only.
  ASSERT_EQ(attnforge_estimate(&a, 0, e, 1, &n), ATTNFORGE_OK);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(e[0].backend, ATTNFORGE_BACKEND_UNFUSED);
}

}  // namespace
