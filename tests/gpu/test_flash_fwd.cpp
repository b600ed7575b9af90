// GPU tests of the flash forward through the C API (tests/common/attention_case.hpp: fp64 CPU reference,
// DESIGN.md's numerics rule, NaN-poisoned outputs): every compiled flash forward variant on the issue's
// boundary pairs, GQA/MQA, varlen with empty sequences, every mask kind (fully masked rows included),
// strided tensors, logits near 1e4, and NaN/1e10/inf in masked-out K/V changing nothing (bitwise).
// Each test runs on both kernels of the forward: the Hopper wgmma kernel (default on sm_90 where the
// variant fits) and the mma.sync kernel (ATTNFORGE_FLASH_FWD_PATH=mma); the sm_90a variants (the
// warp-specialized TMA kernel) run in the first instance on sm_90 devices.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "attention_case.hpp"
#include "flash_variants.hpp"
#include "tensor_view.hpp"

namespace {

using attnforge::test::BiasKind;
using attnforge::test::Case;
using attnforge::test::check_case;
using attnforge::test::DeviceBuffer;
using attnforge::test::FlashVariant;
using attnforge::test::RunOptions;

// Fills what a mask kind needs: window scalars, a bias tensor (cycling through the kinds).
void prepare_mask(Case& c, int i) {
  if (c.mask == "window") c.scalars = {i % 2 ? 37 : 5, i % 3 ? 2 : -1, -1, -1};
  if (c.mask == "bias") c.bias = i % 3 == 0 ? BiasKind::additive : (i % 3 == 1 ? BiasKind::additive_f32 : BiasKind::boolean);
}

// Runs the test body once per forward kernel: "wgmma" (the default choice) and "mma".
class FlashFwd : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!attnforge::test::has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    setenv("ATTNFORGE_FLASH_FWD_PATH", GetParam(), 1);
    variants_ = attnforge::test::compiled_flash_variants("fwd");
    // sm_90a variants have one kernel (the warp-specialized one): they run in the "wgmma" instance,
    // on sm_90 devices only.
    int dev = 0, major = 0;
    ATTNFORGE_TEST_CUDA(cudaGetDevice(&dev));
    ATTNFORGE_TEST_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    const bool mma = std::strcmp(GetParam(), "mma") == 0;
    std::erase_if(variants_, [&](const FlashVariant& v) { return v.arch != 0 && (mma || major * 10 != v.arch); });
    if (variants_.empty()) GTEST_SKIP() << "no flash forward variant compiled (build filter)";
  }
  void TearDown() override { unsetenv("ATTNFORGE_FLASH_FWD_PATH"); }
  RunOptions on(const FlashVariant& v) const { return RunOptions{.variant = v.name.c_str()}; }
  const FlashVariant* first_with(const std::string& mask, int head_dim = 0) const {
    for (const auto& v : variants_)
      if (v.mask == mask && (head_dim == 0 || v.head_dim == head_dim)) return &v;
    return nullptr;
  }
  std::vector<FlashVariant> variants_;
};

// The boundary pairs on every compiled variant, GQA (the 4224² pair on the first variant only,
// and the ~1k pairs with one head per KV group: their fp64 CPU reference dominates the run time).
TEST_P(FlashFwd, BoundaryPairsEveryVariant) {
  const int pairs[][2] = {{1, 1}, {239, 1}, {799, 3}, {113, 203}, {128, 217}, {1023, 1024}, {1024, 1023}};
  int i = 0;
  for (const FlashVariant& v : variants_) {
    SCOPED_TRACE(v.name);
    for (const auto& pr : pairs) {
      Case c;
      c.dtype = v.dtype;
      c.head_dim = v.head_dim;
      c.seqlen_q = pr[0];
      c.seqlen_k = pr[1];
      const bool large = pr[0] * pr[1] > 500000;
      c.batch = large ? 1 : 2;
      c.heads_q = large ? 2 : 4;
      c.heads_kv = 2;
      c.mask = v.mask;
      c.backward = false;
      prepare_mask(c, i++);
      EXPECT_TRUE(check_case(c, on(v)));
    }
  }
  const FlashVariant& v = variants_.front();
  SCOPED_TRACE(v.name);
  Case c;
  c.dtype = v.dtype;
  c.head_dim = v.head_dim;
  c.seqlen_q = c.seqlen_k = 4224;
  c.heads_q = 2;
  c.heads_kv = 2;
  c.mask = v.mask;
  c.backward = false;
  prepare_mask(c, i++);
  EXPECT_TRUE(check_case(c, on(v)));
}

// MQA, GQA and MHA, Sq ≠ Sk both ways, strided (padded) rows, on every variant.
TEST_P(FlashFwd, HeadsAndStrides) {
  int i = 0;
  for (const FlashVariant& v : variants_) {
    SCOPED_TRACE(v.name);
    for (int hkv : {1, 2, 6}) {
      Case c;
      c.dtype = v.dtype;
      c.head_dim = v.head_dim;
      c.batch = 2;
      c.seqlen_q = hkv == 2 ? 300 : 77;
      c.seqlen_k = hkv == 2 ? 150 : 333;
      c.heads_q = 6;
      c.heads_kv = hkv;
      c.strided = hkv != 6;
      c.mask = v.mask;
      c.backward = false;
      prepare_mask(c, i++);
      EXPECT_TRUE(check_case(c, on(v)));
    }
  }
}

// Packed sequences with zero-length queries or keys (rows with no key: O = 0, LSE = −inf).
TEST_P(FlashFwd, VarlenWithEmptySequences) {
  int i = 0;
  for (const FlashVariant& v : variants_) {
    SCOPED_TRACE(v.name);
    Case c;
    c.dtype = v.dtype;
    c.head_dim = v.head_dim;
    c.varlen_q = {17, 0, 300, 5, 1, 129};
    c.varlen_k = {30, 12, 290, 0, 203, 129};
    c.heads_q = 4;
    c.heads_kv = 2;
    c.mask = v.mask;
    c.backward = false;
    prepare_mask(c, i++);
    EXPECT_TRUE(check_case(c, on(v)));
  }
}

// Rows that see no key: causal with Sq > Sk (bottom-right alignment), a window that leaves rows
// empty, bias rows fully masked. O = 0 exactly, LSE = −inf, no NaN (the rule's 1e-5 slack only).
TEST_P(FlashFwd, FullyMaskedRows) {
  int ran = 0;
  if (const FlashVariant* v = first_with("causal")) {
    Case c;
    c.dtype = v->dtype;
    c.head_dim = v->head_dim;
    c.batch = 2;
    c.seqlen_q = 333;
    c.seqlen_k = 113;
    c.heads_q = 2;
    c.mask = "causal";
    c.backward = false;
    EXPECT_TRUE(check_case(c, on(*v)));
    ++ran;
  }
  if (const FlashVariant* v = first_with("window")) {
    Case c;
    c.dtype = v->dtype;
    c.head_dim = v->head_dim;
    c.seqlen_q = 300;
    c.seqlen_k = 100;
    c.heads_q = 2;
    c.mask = "window";
    c.scalars = {3, 0, -1, -1};  // rows i < 200 - 0 see keys ≤ i - 200: none
    c.backward = false;
    EXPECT_TRUE(check_case(c, on(*v)));
    ++ran;
  }
  if (const FlashVariant* v = first_with("bias")) {
    Case c;
    c.dtype = v->dtype;
    c.head_dim = v->head_dim;
    c.seqlen_q = 150;
    c.seqlen_k = 203;
    c.heads_q = 2;
    c.mask = "bias";
    c.bias = BiasKind::boolean;
    c.masked_rows = 9;
    c.backward = false;
    EXPECT_TRUE(check_case(c, on(*v)));
    ++ran;
  }
  if (ran == 0) GTEST_SKIP() << "no causal/window/bias flash forward variant compiled";
}

// Bias tensors broadcast over B, Hq, Sq.
TEST_P(FlashFwd, BiasBroadcast) {
  const FlashVariant* v = first_with("bias");
  if (!v) GTEST_SKIP() << "no bias flash forward variant compiled";
  const std::array<bool, 4> bcs[] = {{true, false, false, false}, {false, true, true, false}, {true, true, false, false}};
  int i = 0;
  for (const auto& bc : bcs) {
    Case c;
    c.dtype = v->dtype;
    c.head_dim = v->head_dim;
    c.batch = 2;
    c.seqlen_q = 130;
    c.seqlen_k = 257;
    c.heads_q = 4;
    c.heads_kv = 2;
    c.mask = "bias";
    c.bias = i++ % 2 ? BiasKind::boolean : BiasKind::additive_f32;
    c.bias_broadcast = bc;
    c.backward = false;
    EXPECT_TRUE(check_case(c, on(*v)));
  }
}

// Logits near 1e4 (scale 1000 on unit normals): exp2 of (s − max) never overflows, result finite and
// within the rule. Also a negative scale (folded into Q).
TEST_P(FlashFwd, LargeLogitsAndNegativeScale) {
  for (const FlashVariant& v : variants_) {
    SCOPED_TRACE(v.name);
    for (float scale : {1000.0f, -0.3f}) {
      Case c;
      c.dtype = v.dtype;
      c.head_dim = v.head_dim;
      c.batch = 2;
      c.seqlen_q = 200;
      c.seqlen_k = 300;
      c.heads_q = 2;
      c.mask = v.mask;
      c.scale = scale;
      c.backward = false;
      prepare_mask(c, 1);
      EXPECT_TRUE(check_case(c, on(v)));
    }
  }
}

// NaN, 1e10 and inf placed in K/V rows that no query can see must change nothing, bitwise: rows past
// the end of K/V inside a larger allocation (every variant), and with a window variant also keys left
// of every query's window (Sq = 200, Sk = 1000, window (100, 0): keys < 700 are dead for all rows).
TEST_P(FlashFwd, GarbageInMaskedKeysChangesNothing) {
  const FlashVariant* v = first_with("window");
  const bool window = v != nullptr;
  if (!v) v = first_with("causal");
  if (!v) v = first_with("none");
  if (!v) GTEST_SKIP() << "no window/causal/none flash forward variant compiled";
  const int B = 2, Sq = 200, Sk = 1000, pad = 40, H = 2, D = v->head_dim;
  const int dead = window ? Sk - Sq - 100 : 0;
  const attnforge_dtype t = v->dtype;
  const size_t qn = size_t(B) * Sq * H * D, kn = size_t(B) * (Sk + pad) * H * D;
  std::vector<double> q = attnforge::test::random_normal(qn, 11, t);
  std::vector<double> k = attnforge::test::random_normal(kn, 12, t);
  std::vector<double> vv = attnforge::test::random_normal(kn, 13, t);
  std::vector<uint16_t> outs[2];
  std::vector<float> lses[2];
  for (int poison = 0; poison < 2; ++poison) {
    std::vector<double> kp = k, vp = vv;
    if (poison) {
      const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
      for (int b = 0; b < B; ++b)
        for (int s = 0; s < Sk + pad; ++s) {
          if (s >= dead && s < Sk) continue;  // live keys (and the window's partial tile) untouched
          for (int e = 0; e < H * D; ++e) {
            const size_t idx = (size_t(b) * (Sk + pad) + s) * H * D + e;
            kp[idx] = s % 2 ? 1e10 : nan;
            vp[idx] = s % 3 ? inf : nan;
          }
        }
    }
    DeviceBuffer dq = attnforge::test::upload(q, t), dk = attnforge::test::upload(kp, t),
                 dv = attnforge::test::upload(vp, t);
    DeviceBuffer dout(qn * 2), dlse(size_t(B) * H * Sq * sizeof(float));
    auto tensor = [&](const DeviceBuffer& buf, attnforge_dtype dt, int64_t b_stride, int64_t s) {
      attnforge_tensor x{};
      x.data = buf.get();
      x.dtype = dt;
      x.rank = 4;
      const int64_t sizes[4] = {B, s, H, D}, strides[4] = {b_stride, int64_t(H) * D, D, 1};
      for (int i = 0; i < 4; ++i) x.sizes[i] = sizes[i], x.strides[i] = strides[i];
      return x;
    };
    attnforge_args a;
    attnforge_args_init(&a);
    a.q = tensor(dq, t, int64_t(Sq) * H * D, Sq);
    a.k = tensor(dk, t, int64_t(Sk + pad) * H * D, Sk);  // rows Sk .. Sk+pad-1 exist but are not K
    a.v = tensor(dv, t, int64_t(Sk + pad) * H * D, Sk);
    a.o = tensor(dout, t, int64_t(Sq) * H * D, Sq);
    a.lse.data = dlse.get();
    a.lse.dtype = ATTNFORGE_F32;
    a.lse.rank = 3;
    const int64_t ls[3] = {B, H, Sq}, lst[3] = {int64_t(H) * Sq, Sq, 1};
    for (int i = 0; i < 3; ++i) a.lse.sizes[i] = ls[i], a.lse.strides[i] = lst[i];
    a.mask.kind = v->mask.c_str();
    if (window) a.mask.scalars[0] = 100, a.mask.scalars[1] = 0;
    a.variant = v->name.c_str();
    ASSERT_EQ(attnforge_forward(&a, nullptr), ATTNFORGE_OK) << attnforge_last_error();
    ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
    outs[poison].resize(qn);
    lses[poison].resize(size_t(B) * H * Sq);
    ATTNFORGE_TEST_CUDA(cudaMemcpy(outs[poison].data(), dout.get(), qn * 2, cudaMemcpyDeviceToHost));
    ATTNFORGE_TEST_CUDA(cudaMemcpy(lses[poison].data(), dlse.get(), lses[poison].size() * 4, cudaMemcpyDeviceToHost));
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 2), 0) << "O changed";
  EXPECT_EQ(std::memcmp(lses[0].data(), lses[1].data(), lses[0].size() * 4), 0) << "LSE changed";
  size_t nans = 0;
  for (float x : lses[1]) nans += std::isnan(x);
  EXPECT_EQ(nans, 0u);
}

// The warp-specialized forward's split last round (WsSplit, flash/ws_schedule.hpp) on every mask-free
// sm90a variant: B·Hq·⌈Sq / block_m⌉ row blocks leave this device's last round partial, and 700 keys are
// ≥ 4 key tiles. Checked against the reference with the library's workspace, a caller's of exactly
// attnforge_workspace_size bytes, and one too small (the library then allocates its own); then run
// twice more with the NaN-poisoned output in between: O and LSE bitwise equal (the merge's order does
// not depend on which piece arrives last).
TEST_P(FlashFwd, SplitLastRound) {
  const int sms = attnforge::test::device_sms();
  int ran = 0;
  for (const FlashVariant& v : variants_) {
    if (v.arch != 90 || v.mask != "none") continue;
    // Sq 300: 3 row blocks of 128 (one CTA per block); at D 128 also 500: 4, which the 128-key tile walks as
    // CTA pairs (FwdWsConfig::kClusterPairs), splitting its last round in units of two blocks.
    for (const int Sq : {300, 500}) {
      if (Sq == 500 && v.head_dim != 128) continue;
      SCOPED_TRACE(v.name + " Sq " + std::to_string(Sq));
      const int B = 2, Sk = 700, Hkv = 2, D = v.head_dim, n_m = (Sq + v.block_m - 1) / v.block_m;
      int Hq = 2 * ((sms + B * n_m - 1) / (B * n_m));  // more blocks than SMs ...
      while ((B * Hq * n_m) % sms == 0) Hq += 2;         // ... and a partial last round
      for (auto ws : {RunOptions::Workspace::library, RunOptions::Workspace::exact, RunOptions::Workspace::too_small}) {
        Case c;
        c.dtype = v.dtype;
        c.head_dim = D;
        c.batch = B, c.seqlen_q = Sq, c.seqlen_k = Sk, c.heads_q = Hq, c.heads_kv = Hkv;
        c.backward = false;
        RunOptions opt = on(v);
        opt.workspace = ws;
        EXPECT_TRUE(check_case(c, opt)) << "workspace option " << int(ws);
      }
      const attnforge_dtype t = v.dtype;
      const size_t qn = size_t(B) * Sq * Hq * D, kn = size_t(B) * Sk * Hkv * D, ln = size_t(B) * Hq * Sq;
      DeviceBuffer dq = attnforge::test::upload(attnforge::test::random_normal(qn, 21, t), t);
      DeviceBuffer dk = attnforge::test::upload(attnforge::test::random_normal(kn, 22, t), t);
      DeviceBuffer dv = attnforge::test::upload(attnforge::test::random_normal(kn, 23, t), t);
      DeviceBuffer dout(qn * 2), dlse(ln * sizeof(float));
      attnforge_args a;
      attnforge_args_init(&a);
      using attnforge::test::contiguous_tensor;
      a.q = contiguous_tensor(dq.get(), t, {B, Sq, Hq, D});
      a.k = contiguous_tensor(dk.get(), t, {B, Sk, Hkv, D});
      a.v = contiguous_tensor(dv.get(), t, {B, Sk, Hkv, D});
      a.o = contiguous_tensor(dout.get(), t, {B, Sq, Hq, D});
      a.lse = contiguous_tensor(dlse.get(), ATTNFORGE_F32, {B, Hq, Sq});
      a.variant = v.name.c_str();
      std::vector<uint16_t> outs[2];
      std::vector<float> lses[2];
      for (int run = 0; run < 2; ++run) {
        ATTNFORGE_TEST_CUDA(cudaMemset(dout.get(), 0xFF, qn * 2));  // NaN in both 16-bit types
        ATTNFORGE_TEST_CUDA(cudaMemset(dlse.get(), 0xFF, ln * sizeof(float)));
        ASSERT_EQ(attnforge_forward(&a, nullptr), ATTNFORGE_OK) << attnforge_last_error();
        ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
        outs[run].resize(qn), lses[run].resize(ln);
        ATTNFORGE_TEST_CUDA(cudaMemcpy(outs[run].data(), dout.get(), qn * 2, cudaMemcpyDeviceToHost));
        ATTNFORGE_TEST_CUDA(cudaMemcpy(lses[run].data(), dlse.get(), ln * 4, cudaMemcpyDeviceToHost));
      }
      EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), qn * 2), 0) << "O differs between two runs";
      EXPECT_EQ(std::memcmp(lses[0].data(), lses[1].data(), ln * 4), 0) << "LSE differs between two runs";
      ++ran;
    }
  }
  if (ran == 0) GTEST_SKIP() << "no mask-free sm90a flash forward variant in this instance";
}

// Offsets past 2³¹ elements: q/k/v/o with a batch stride of 2³¹ + 64 elements (4 GiB apart), the
// same data in both batch entries; batch 1 must reproduce batch 0 bitwise (int32 offsets would wrap
// and read or write the wrong place). Skipped when the device cannot hold the 4 × 4 GiB buffers.
TEST_P(FlashFwd, OffsetsBeyondInt32) {
  const FlashVariant& v = variants_.front();
  const int Sq = 300, Sk = 517, H = 2, D = v.head_dim;
  const int64_t stride_b = (int64_t(1) << 31) + 64;
  const size_t rows_q = size_t(Sq) * H * D, rows_k = size_t(Sk) * H * D;
  size_t free_b = 0, total_b = 0;
  ATTNFORGE_TEST_CUDA(cudaMemGetInfo(&free_b, &total_b));
  const size_t need = 2 * size_t(stride_b + rows_q) * 2 + 2 * size_t(stride_b + rows_k) * 2;
  if (free_b < need + (size_t(1) << 30)) GTEST_SKIP() << "needs " << (need >> 30) << " GiB of device memory";
  DeviceBuffer dq(size_t(stride_b + rows_q) * 2, false), dk(size_t(stride_b + rows_k) * 2, false),
      dv(size_t(stride_b + rows_k) * 2, false), dout(size_t(stride_b + rows_q) * 2, false);
  ATTNFORGE_TEST_CUDA(cudaMemset(dout.get(), 0xFF, rows_q * 2));
  ATTNFORGE_TEST_CUDA(cudaMemset(dout.as<char>() + stride_b * 2, 0xFF, rows_q * 2));
  auto fill = [&](DeviceBuffer& buf, size_t n, uint64_t seed) {
    DeviceBuffer src = attnforge::test::upload(attnforge::test::random_normal(n, seed, v.dtype), v.dtype);
    ATTNFORGE_TEST_CUDA(cudaMemcpy(buf.get(), src.get(), n * 2, cudaMemcpyDeviceToDevice));
    ATTNFORGE_TEST_CUDA(cudaMemcpy(buf.as<char>() + stride_b * 2, src.get(), n * 2, cudaMemcpyDeviceToDevice));
  };
  fill(dq, rows_q, 21);
  fill(dk, rows_k, 22);
  fill(dv, rows_k, 23);
  DeviceBuffer dlse(size_t(2) * H * Sq * sizeof(float));
  auto tensor = [&](const DeviceBuffer& buf, int64_t s) {
    attnforge_tensor x{};
    x.data = buf.get();
    x.dtype = v.dtype;
    x.rank = 4;
    const int64_t sizes[4] = {2, s, H, D}, strides[4] = {stride_b, int64_t(H) * D, D, 1};
    for (int i = 0; i < 4; ++i) x.sizes[i] = sizes[i], x.strides[i] = strides[i];
    return x;
  };
  attnforge_args a;
  attnforge_args_init(&a);
  a.q = tensor(dq, Sq);
  a.k = tensor(dk, Sk);
  a.v = tensor(dv, Sk);
  a.o = tensor(dout, Sq);
  a.lse.data = dlse.get();
  a.lse.dtype = ATTNFORGE_F32;
  a.lse.rank = 3;
  const int64_t ls[3] = {2, H, Sq}, lst[3] = {int64_t(H) * Sq, Sq, 1};
  for (int i = 0; i < 3; ++i) a.lse.sizes[i] = ls[i], a.lse.strides[i] = lst[i];
  a.mask.kind = v.mask.c_str();
  if (v.mask == "window") a.mask.scalars[0] = 40, a.mask.scalars[1] = 3;
  if (v.mask == "bias") GTEST_SKIP() << "first variant reads a bias tensor";
  a.variant = v.name.c_str();
  ASSERT_EQ(attnforge_forward(&a, nullptr), ATTNFORGE_OK) << attnforge_last_error();
  ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
  std::vector<uint16_t> o0(rows_q), o1(rows_q);
  std::vector<float> lse(size_t(2) * H * Sq);
  ATTNFORGE_TEST_CUDA(cudaMemcpy(o0.data(), dout.get(), rows_q * 2, cudaMemcpyDeviceToHost));
  ATTNFORGE_TEST_CUDA(cudaMemcpy(o1.data(), dout.as<char>() + stride_b * 2, rows_q * 2, cudaMemcpyDeviceToHost));
  ATTNFORGE_TEST_CUDA(cudaMemcpy(lse.data(), dlse.get(), lse.size() * 4, cudaMemcpyDeviceToHost));
  EXPECT_EQ(std::memcmp(o0.data(), o1.data(), rows_q * 2), 0) << "batch 1 (offsets > 2^31) differs from batch 0";
  EXPECT_EQ(std::memcmp(lse.data(), lse.data() + size_t(H) * Sq, size_t(H) * Sq * 4), 0);
  size_t bad = 0;
  for (uint16_t x : o0) bad += (x & 0x7F80) == 0x7F80 && v.dtype == ATTNFORGE_BF16;  // NaN/inf (bf16)
  EXPECT_EQ(bad, 0u) << "non-finite outputs";
}

INSTANTIATE_TEST_SUITE_P(Kernels, FlashFwd, ::testing::Values("wgmma", "mma"),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

}  // namespace
