// GPU tests of the tune cache as selection reads it from disk: metadata of the real device, a
// cache written for it steers "auto", one for another GPU or build is ignored, and the tuned
// variant actually runs and matches the backend's own result.
#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "attnforge/attnforge.h"
#include "attnforge/attention.hpp"
#include "gpu.hpp"
#include "select.hpp"
#include "tune_cache.hpp"
#include "tune_lookup.hpp"

namespace attnforge {
namespace {

void* const kFake = reinterpret_cast<void*>(uintptr_t(1) << 40);  // selection never dereferences it

attnforge_tensor dense(int64_t a, int64_t b, int64_t c, int64_t d, void* data = kFake) {  // contiguous, bf16
  return attnforge::Tensor(data, ATTNFORGE_BF16, {a, b, c, d}).c();
}

// bf16, B = 2, S = 3000, H = 4, D = 64, causal, forward: flash by the heuristic.
attnforge_args args() {
  attnforge_args a;
  attnforge_args_init(&a);
  a.q = a.o = dense(2, 3000, 4, 64);
  a.k = a.v = dense(2, 3000, 4, 64);
  a.mask.kind = "causal";
  return a;
}

std::string choose(const attnforge_args& a, std::string* reason = nullptr) {
  char variant[128] = {0}, why[2048] = {0};
  attnforge_backend b{};
  EXPECT_EQ(attnforge_select_backend(&a, 0, &b, variant, sizeof variant, why, sizeof why), ATTNFORGE_OK) << why;
  if (reason) *reason = why;
  return variant;
}

std::optional<std::string> find_prefix(const std::string& prefix) {
  for (int i = 0; i < attnforge_variant_count(); ++i) {
    const std::string n = attnforge_variant_name(i);
    if (n.rfind(prefix, 0) == 0) return n;
  }
  return std::nullopt;
}

class TuneSelectGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    ATTNFORGE_REQUIRE_GPU();
    char tmpl[] = "/tmp/attnforge_tune_gpu_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/tune.json";
    ::setenv("ATTNFORGE_TUNE_CACHE", path_.c_str(), 1);
    select_reset();
    unfused_ = find_prefix("unfused_fwd_bf16_hdany_causal_");
    if (!unfused_) GTEST_SKIP() << "this build has no unfused bf16 causal forward";
  }
  void TearDown() override {
    ::unsetenv("ATTNFORGE_TUNE_CACHE");
    select_reset();
    std::error_code ec;  // best effort: a leftover temp directory fails nothing
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  // A cache that says unfused won this shape (so that following it is visible).
  tune::Entries entries() const {
    tune::Entry e;
    e.winner = *unfused_;
    e.times_ms = {{*unfused_, 0.5}};
    return {{tune::Key::of(Direction::fwd, DType::bf16, 2, 3000, 3000, 4, 4, 64, "causal"), e}};
  }
  static bool exists(std::string_view n) {
    for (int i = 0; i < attnforge_variant_count(); ++i)
      if (n == attnforge_variant_name(i)) return true;
    return false;
  }
  std::string dir_, path_;
  std::optional<std::string> unfused_;
};

TEST_F(TuneSelectGpu, MetadataOfTheRealDevice) {
  auto m = tune::current_metadata(0);
  ASSERT_TRUE(m.has_value());
  EXPECT_FALSE(m->device.name.empty());
  EXPECT_GT(m->device.sm_count, 0);
  EXPECT_GE(m->device.cc_major, 7);
  EXPECT_GT(m->device.cuda_runtime, 0);
  EXPECT_GT(m->device.cuda_driver, 0);
  EXPECT_FALSE(m->manifest_hash.empty());
  EXPECT_EQ(m->library_version, attnforge_version());
}

TEST_F(TuneSelectGpu, ACacheForThisDeviceSteersAuto) {
  auto m = tune::current_metadata(0);
  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(tune::save_merged(path_, *m, entries(), exists).ok);
  select_reset();
  std::string reason;
  EXPECT_EQ(choose(args(), &reason), *unfused_);
  EXPECT_NE(reason.find("exact key"), std::string::npos) << reason;
}

TEST_F(TuneSelectGpu, ACacheForAnotherGpuOrBuildIsIgnored) {
  auto m = tune::current_metadata(0);
  ASSERT_TRUE(m.has_value());
  for (int which = 0; which < 2; ++which) {
    tune::Metadata other = *m;
    if (which == 0) other.device.name += " (another one)";
    else other.manifest_hash = "0000" + other.manifest_hash;
    ASSERT_TRUE(tune::save_merged(path_, other, entries(), exists, /*overwrite_foreign=*/true).ok);
    select_reset();
    std::string reason;
    const std::string v = choose(args(), &reason);
    EXPECT_NE(v, *unfused_) << reason;
    EXPECT_NE(reason.find("hard mismatch"), std::string::npos) << reason;
  }
}

// The variant a cache names really runs: its output equals that backend's explicit call, bit for bit.
TEST_F(TuneSelectGpu, TheTunedVariantRuns) {
  auto m = tune::current_metadata(0);
  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(tune::save_merged(path_, *m, entries(), exists).ok);
  select_reset();
  const size_t nq = size_t(2) * 3000 * 4 * 64;
  std::vector<uint16_t> host(nq);
  uint32_t x = 12345;
  for (auto& h : host) {  // small random bf16 values in [-1, 1)
    x = x * 1664525u + 1013904223u;
    const float f = float(int32_t(x >> 8) - (1 << 23)) / float(1 << 23);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    h = uint16_t(bits >> 16);
  }
  void *q, *k, *v, *o1, *o2;
  for (void** p : {&q, &k, &v, &o1, &o2}) ATTNFORGE_TEST_CUDA(cudaMalloc(p, nq * 2));
  for (void* p : {q, k, v}) ATTNFORGE_TEST_CUDA(cudaMemcpy(p, host.data(), nq * 2, cudaMemcpyHostToDevice));
  ATTNFORGE_TEST_CUDA(cudaMemset(o1, 0xFF, nq * 2));
  ATTNFORGE_TEST_CUDA(cudaMemset(o2, 0xFF, nq * 2));
  attnforge_args a = args();
  a.q.data = q, a.k.data = k, a.v.data = v, a.o.data = o1;
  ASSERT_EQ(attnforge_forward(&a, nullptr), ATTNFORGE_OK) << attnforge_last_error();  // auto → cache → unfused
  a.o.data = o2;
  a.backend = ATTNFORGE_BACKEND_UNFUSED;
  ASSERT_EQ(attnforge_forward(&a, nullptr), ATTNFORGE_OK) << attnforge_last_error();
  ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
  std::vector<uint16_t> r1(nq), r2(nq);
  ATTNFORGE_TEST_CUDA(cudaMemcpy(r1.data(), o1, nq * 2, cudaMemcpyDeviceToHost));
  ATTNFORGE_TEST_CUDA(cudaMemcpy(r2.data(), o2, nq * 2, cudaMemcpyDeviceToHost));
  for (void* p : {q, k, v, o1, o2}) ATTNFORGE_TEST_CUDA(cudaFree(p));
  EXPECT_EQ(r1, r2);
  size_t nan = 0;
  for (uint16_t h : r1) nan += (h & 0x7f80) == 0x7f80 && (h & 0x7f);
  EXPECT_EQ(nan, 0u);  // every element written (poisoned with NaN before)
}

}  // namespace
}  // namespace attnforge
