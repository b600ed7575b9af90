// GPU tests of the fused backend through the C API (tests/common/attention_case.hpp: fp64 CPU reference,
// DESIGN.md's numerics rule, poisoned outputs): odd shapes under every mask kind, head dims, GQA, varlen
// with empty sequences, fully masked rows, bias kinds, returned weights, every compiled fused variant at
// and one past its key-row limit, and one kernel launch per forward (counted in a captured CUDA graph).
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <regex>
#include <string>
#include <tuple>
#include <vector>

#include "attention_case.hpp"
#include "gpu.hpp"
#include "scoped_env.hpp"
#include "tensor_view.hpp"

namespace {

using attnforge::test::contiguous_tensor;

using attnforge::test::BiasKind;
using attnforge::test::Case;
using attnforge::test::check_case;
using attnforge::test::check_case_fails;
using attnforge::test::odd_shape_cases;
using attnforge::test::RunOptions;

// fp32 runs on CUDA cores (fused/f32.cuh); a dtype with no compiled fused variant is skipped.
constexpr attnforge_dtype kDtypes[] = {ATTNFORGE_F16, ATTNFORGE_BF16, ATTNFORGE_F32};
const RunOptions kFused{.backend = ATTNFORGE_BACKEND_FUSED};

// A compiled fused forward variant, parsed from its canonical name
// fused_fwd_{dtype}_hd{D}_{mask}_m{M}n{N}w{W}[s{S}_sm90a] (the streamed key row: sm_90 devices only).
struct FusedVariant {
  std::string name;
  attnforge_dtype dtype;
  int head_dim, block_m, limit, warps;
  std::string mask;
};

std::vector<FusedVariant> compiled_fused(const char* direction) {
  const std::regex re(std::string("fused_") + direction +
                      R"(_(f32|f16|bf16)_hd(\d+)_(\w+?)_m(\d+)n(\d+)w(\d+)(s\d+_sm90a)?)");
  std::vector<FusedVariant> out;
  for (int i = 0; i < attnforge_variant_count(); ++i) {
    const std::string name = attnforge_variant_name(i);
    std::smatch m;
    if (!std::regex_match(name, m, re)) continue;
    if (m[7].matched && attnforge::test::device_cc_major() != 9) continue;  // an sm_90a kernel
    const attnforge_dtype t = m[1] == "f16" ? ATTNFORGE_F16 : m[1] == "bf16" ? ATTNFORGE_BF16 : ATTNFORGE_F32;
    out.push_back({name, t, std::stoi(m[2]), std::stoi(m[4]),
                   std::stoi(m[5]), std::stoi(m[6]), m[3]});
  }
  return out;
}
std::vector<FusedVariant> compiled_fused_forward() { return compiled_fused("fwd"); }

bool has_variant(const std::string& name) {
  for (int i = 0; i < attnforge_variant_count(); ++i)
    if (name == attnforge_variant_name(i)) return true;
  return false;
}

// Largest key row the fused backend can serve for (dtype, D, mask) in a direction: the longest compiled
// limit; 0 = none built.
int fused_limit(attnforge_dtype t, int d, const std::string& mask, const char* direction = "fwd") {
  int best = 0;
  for (const FusedVariant& v : compiled_fused(direction))
    if (v.dtype == t && v.head_dim == d && v.mask == mask && v.limit > best) best = v.limit;
  return best;
}

#define REQUIRE_FUSED(t, d, mask)                                                                       \
  if (fused_limit(t, d, mask) == 0) {                                                                   \
    GTEST_SKIP() << "no fused variant compiled for " << attnforge::test::dtype_name(t) << " hd" << d << " " \
                 << mask << " (build filter)";                                                          \
  }

void set_bias(Case& c, int i) {
  if (c.mask == "bias") c.bias = i % 3 == 2 ? BiasKind::boolean : BiasKind::additive;
  if (c.mask == "window") c.scalars = {17, 3, -1, -1};
}

// Sq, Sk ∈ {1, 3, 113, 203}, Sq ≠ Sk, MHA and GQA, forward + backward, per dtype and mask kind.
TEST(Fused, OddShapesEveryMask) {
  ATTNFORGE_REQUIRE_GPU();
  for (attnforge_dtype t : kDtypes)
    for (const char* mask : {"none", "causal", "window", "bias"}) {
      if (fused_limit(t, 64, mask) == 0) continue;
      for (const Case& c : odd_shape_cases(t, 64, mask)) EXPECT_TRUE(check_case(c, kFused));
    }
}

// Every head dim built, with the weights returned (P from the same kernel vs the fp64 reference).
TEST(Fused, HeadDimsAndWeights) {
  ATTNFORGE_REQUIRE_GPU();
  int ran = 0;
  for (attnforge_dtype t : kDtypes)
    for (int d : {32, 64, 96, 128, 192, 256}) {
      if (fused_limit(t, d, "causal") == 0) continue;
      Case c;
      c.dtype = t;
      c.head_dim = d;
      c.batch = 2;
      c.seqlen_q = 70;  // two row blocks, the second partial
      c.seqlen_k = 150;
      c.heads_q = 4;
      c.heads_kv = 2;
      c.mask = "causal";
      c.return_weights = true;
      EXPECT_TRUE(check_case(c, kFused));
      ++ran;
    }
  if (ran == 0) GTEST_SKIP() << "no fused causal variant compiled";
}

// Every compiled fused variant: key rows up to its limit (the limit itself included) pass, forward with
// weights (without them at Sk 64) and backward; limit + 1 on that exact variant is rejected before launch with the limit named.
TEST(Fused, EveryVariantUpToItsLimit) {
  ATTNFORGE_REQUIRE_GPU();
  const auto variants = compiled_fused_forward();
  if (variants.empty()) GTEST_SKIP() << "no fused variant compiled";
  for (const FusedVariant& v : variants) {
    SCOPED_TRACE(v.name);
    for (int sk : {1, 64, 65, v.limit - 1, v.limit}) {
      Case c;
      c.dtype = v.dtype;
      c.head_dim = v.head_dim;
      c.seqlen_q = v.block_m + 3;  // a full row block and a partial one
      c.seqlen_k = sk;
      c.heads_q = 2;
      c.heads_kv = 1;
      c.mask = v.mask;
      set_bias(c, sk);
      c.return_weights = sk != 64;  // one length without them: a kernel's no-weights path runs too
      c.backward = false;
      // The forward on exactly this variant; the backward through backend selection.
      EXPECT_TRUE(check_case(c, RunOptions{.variant = v.name.c_str()}));
      // The backward twin (same tile, same limit) where its shared memory fits; the backward of a
      // head dim can have a shorter longest row (e.g. hd192: fwd m32n768, bwd only m64n384).
      std::string bwd_name = v.name;
      bwd_name.replace(bwd_name.find("_fwd_"), 5, "_bwd_");
      if (sk == v.limit && has_variant(bwd_name)) {
        c.backward = true;
        c.return_weights = false;
        EXPECT_TRUE(check_case(c, kFused));
      }
    }
    Case over;
    over.dtype = v.dtype;
    over.head_dim = v.head_dim;
    over.seqlen_q = 5;
    over.seqlen_k = v.limit + 1;
    over.mask = v.mask;
    set_bias(over, 0);
    over.backward = false;
    EXPECT_TRUE(check_case_fails(over, RunOptions{.variant = v.name.c_str()}, ATTNFORGE_UNSUPPORTED,
                                 std::to_string(v.limit)));
  }
}

// Past the longest key row of any fused variant, backend fused refuses and names that limit.
TEST(Fused, BeyondLongestRowIsRejected) {
  ATTNFORGE_REQUIRE_GPU();
  bool any = false;
  for (const char* dir : {"fwd", "bwd"}) {
    std::map<std::tuple<attnforge_dtype, int, std::string>, int> longest;
    for (const FusedVariant& v : compiled_fused(dir)) {
      int& l = longest[{v.dtype, v.head_dim, v.mask}];
      l = std::max(l, v.limit);
    }
    for (const auto& [key, limit] : longest) {
      any = true;
      Case c;
      c.dtype = std::get<0>(key);
      c.head_dim = std::get<1>(key);
      c.mask = std::get<2>(key);
      set_bias(c, 0);
      c.seqlen_q = 3;
      c.seqlen_k = limit + 1;
      c.backward = std::string(dir) == "bwd";
      EXPECT_TRUE(check_case_fails(c, kFused, ATTNFORGE_UNSUPPORTED, "up to " + std::to_string(limit)));
    }
  }
  if (!any) GTEST_SKIP() << "no fused variant compiled";
}

// Packed sequences, zero-length query or key sequences included.
TEST(Fused, VarlenWithEmptySequences) {
  ATTNFORGE_REQUIRE_GPU();
  for (attnforge_dtype t : kDtypes)
    for (const char* mask : {"none", "causal", "window"}) {
      if (fused_limit(t, 64, mask) < 203) continue;
      Case c;
      c.dtype = t;
      c.varlen_q = {17, 0, 113, 5, 1, 70};
      c.varlen_k = {30, 12, 113, 0, 203, 64};
      c.heads_q = 4;
      c.heads_kv = 2;
      c.head_dim = 64;
      c.mask = mask;
      if (mask[0] == 'w') c.scalars = {9, 2, -1, -1};
      EXPECT_TRUE(check_case(c, kFused));
    }
}

// Rows that see no key (causal with Sq > Sk; bias rows fully masked): O = 0, LSE = −inf, P row = 0,
// gradients 0, never NaN.
TEST(Fused, FullyMaskedRows) {
  ATTNFORGE_REQUIRE_GPU();
  for (attnforge_dtype t : kDtypes) {
    if (fused_limit(t, 64, "causal") > 0) {
      Case c;
      c.dtype = t;
      c.batch = 2;
      c.seqlen_q = 203;
      c.seqlen_k = 113;
      c.heads_q = 2;
      c.heads_kv = 1;
      c.mask = "causal";
      c.return_weights = true;
      EXPECT_TRUE(check_case(c, kFused));
    }
    if (fused_limit(t, 64, "bias") > 0) {
      Case c;
      c.dtype = t;
      c.seqlen_q = 45;
      c.seqlen_k = 150;
      c.heads_q = 2;
      c.heads_kv = 2;
      c.mask = "bias";
      c.bias = BiasKind::boolean;
      c.masked_rows = 5;
      c.return_weights = true;
      EXPECT_TRUE(check_case(c, kFused));
    }
  }
}

// Bias tensors: additive in the dtype or f32, boolean; broadcast over B, Hq, Sq.
TEST(Fused, BiasKindsAndBroadcast) {
  ATTNFORGE_REQUIRE_GPU();
  const std::array<bool, 4> broadcasts[] = {
      {false, false, false, false}, {true, false, false, false}, {false, true, true, false}};
  int n = 0;
  for (BiasKind kind : {BiasKind::additive, BiasKind::additive_f32, BiasKind::boolean})
    for (const auto& bc : broadcasts)
      for (attnforge_dtype t : kDtypes) {
        ++n;
        if (fused_limit(t, 64, "bias") == 0) continue;
        Case c;
        c.dtype = t;
        c.batch = 2;
        c.seqlen_q = 45;
        c.seqlen_k = 203;
        c.heads_q = 4;
        c.heads_kv = 2;
        c.mask = "bias";
        c.bias = kind;
        c.bias_broadcast = bc;
        c.masked_rows = bc[2] ? 0 : 3;
        c.return_weights = n % 2 == 0;
        EXPECT_TRUE(check_case(c, kFused));
      }
}

// Non-contiguous tensors (padded rows), a custom scale, and the library-supplied LSE.
TEST(Fused, StridedScaleAndInternalLse) {
  ATTNFORGE_REQUIRE_GPU();
  for (attnforge_dtype t : kDtypes) {
    if (fused_limit(t, 128, "causal") == 0) continue;
    Case c;
    c.dtype = t;
    c.batch = 3;
    c.seqlen_q = 113;
    c.seqlen_k = 203;
    c.heads_q = 8;
    c.heads_kv = 2;
    c.head_dim = 128;
    c.mask = "causal";
    c.strided = true;
    c.scale = 0.3f;
    EXPECT_TRUE(check_case(c, kFused));
    c.strided = false;
    c.pass_lse = false;
    c.backward = false;
    c.return_weights = true;
    EXPECT_TRUE(check_case(c, kFused));
  }
}

// ---- launch counting: capture the call into a CUDA graph and count its kernel nodes ---------------

struct Tensors {
  attnforge::test::DeviceBuffer q, k, v, o, lse, w, d_o, dq, dk, dv;
};

// Kernel nodes of the graph captured around fn(stream); fn's status must be OK.
int kernels_in_capture(const std::function<attnforge_status(cudaStream_t)>& fn, cudaGraph_t* keep) {
  cudaStream_t s;
  ATTNFORGE_TEST_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  ATTNFORGE_TEST_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  const attnforge_status st = fn(s);
  cudaGraph_t graph = nullptr;
  ATTNFORGE_TEST_CUDA(cudaStreamEndCapture(s, &graph));
  ATTNFORGE_TEST_CUDA(cudaStreamDestroy(s));
  EXPECT_EQ(st, ATTNFORGE_OK) << attnforge_last_error();
  size_t n = 0;
  ATTNFORGE_TEST_CUDA(cudaGraphGetNodes(graph, nullptr, &n));
  std::vector<cudaGraphNode_t> nodes(n);
  if (n) ATTNFORGE_TEST_CUDA(cudaGraphGetNodes(graph, nodes.data(), &n));
  int kernels = 0;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type;
    ATTNFORGE_TEST_CUDA(cudaGraphNodeGetType(node, &type));
    kernels += type == cudaGraphNodeTypeKernel;
  }
  *keep = graph;
  return kernels;
}

// One forward call = one kernel (weights included); the backward = at most two kernels. The captured
// forward graph, replayed, gives bit-for-bit the output of a direct call.
TEST(Fused, OneKernelPerForwardAtMostTwoPerBackward) {
  ATTNFORGE_REQUIRE_GPU();
  const attnforge_dtype t = ATTNFORGE_BF16;
  const int d = 64;
  if (fused_limit(t, d, "causal") < 256 || fused_limit(t, d, "causal", "bwd") < 256)
    GTEST_SKIP() << "no fused bf16 hd64 causal forward and backward variants compiled";
  const int B = 2, S = 256, H = 4;
  const size_t n = size_t(B) * S * H * d;
  using attnforge::test::upload;
  using attnforge::test::random_normal;
  Tensors x;
  x.q = upload(random_normal(n, 1, t), t);
  x.k = upload(random_normal(n, 2, t), t);
  x.v = upload(random_normal(n, 3, t), t);
  x.d_o = upload(random_normal(n, 4, t), t);
  x.o = attnforge::test::DeviceBuffer(n * 2);
  x.lse = attnforge::test::DeviceBuffer(size_t(B) * H * S * 4);
  x.w = attnforge::test::DeviceBuffer(size_t(B) * H * S * S * 2);
  x.dq = attnforge::test::DeviceBuffer(n * 2);
  x.dk = attnforge::test::DeviceBuffer(n * 2);
  x.dv = attnforge::test::DeviceBuffer(n * 2);
  attnforge_args a;
  attnforge_args_init(&a);
  a.q = contiguous_tensor(x.q.get(), t, {B, S, H, d});
  a.k = contiguous_tensor(x.k.get(), t, {B, S, H, d});
  a.v = contiguous_tensor(x.v.get(), t, {B, S, H, d});
  a.o = contiguous_tensor(x.o.get(), t, {B, S, H, d});
  a.lse = contiguous_tensor(x.lse.get(), ATTNFORGE_F32, {B, H, S});
  a.weights = contiguous_tensor(x.w.get(), t, {B, H, S, S});
  a.mask.kind = "causal";
  a.backend = ATTNFORGE_BACKEND_FUSED;

  // Direct call: the reference output.
  ASSERT_EQ(attnforge_forward(&a, nullptr), ATTNFORGE_OK) << attnforge_last_error();
  ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
  const auto o_direct = attnforge::test::download(x.o, n, t);
  const auto w_direct = attnforge::test::download(x.w, size_t(B) * H * S * S, t);

  cudaGraph_t fwd = nullptr;
  EXPECT_EQ(kernels_in_capture([&](cudaStream_t s) { return attnforge_forward(&a, s); }, &fwd), 1);
  x.o.poison();
  x.w.poison();
  cudaGraphExec_t exec;
  ATTNFORGE_TEST_CUDA(cudaGraphInstantiate(&exec, fwd, 0));
  ATTNFORGE_TEST_CUDA(cudaGraphLaunch(exec, nullptr));
  ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
  EXPECT_EQ(attnforge::test::download(x.o, n, t), o_direct);
  EXPECT_EQ(attnforge::test::download(x.w, size_t(B) * H * S * S, t), w_direct);
  ATTNFORGE_TEST_CUDA(cudaGraphExecDestroy(exec));
  ATTNFORGE_TEST_CUDA(cudaGraphDestroy(fwd));

  // Backward: the library may allocate its workspace stream-ordered inside the capture (a memory
  // node, not a kernel); kernels must be at most two.
  attnforge_args b = a;
  b.weights = attnforge_tensor{};
  b.d_o = contiguous_tensor(x.d_o.get(), t, {B, S, H, d});
  b.dq = contiguous_tensor(x.dq.get(), t, {B, S, H, d});
  b.dk = contiguous_tensor(x.dk.get(), t, {B, S, H, d});
  b.dv = contiguous_tensor(x.dv.get(), t, {B, S, H, d});
  cudaGraph_t bwd = nullptr;
  const int k_bwd = kernels_in_capture([&](cudaStream_t s) { return attnforge_backward(&b, s); }, &bwd);
  EXPECT_GE(k_bwd, 1);
  EXPECT_LE(k_bwd, 2);
  ATTNFORGE_TEST_CUDA(cudaGraphDestroy(bwd));
}

// deterministic = 1 is refused with a reason (dK/dV use fp32 atomics).
TEST(Fused, DeterministicBackwardIsRefused) {
  ATTNFORGE_REQUIRE_GPU();
  if (fused_limit(ATTNFORGE_BF16, 64, "none", "bwd") == 0)
    GTEST_SKIP() << "no fused bf16 hd64 none backward variant compiled";
  Case c;
  c.seqlen_q = 20;
  c.seqlen_k = 30;
  RunOptions o = kFused;
  o.deterministic = true;
  EXPECT_TRUE(check_case_fails(c, o, ATTNFORGE_UNSUPPORTED, "deterministic"));
}

// Enough heads (B·Hq ≥ the SM count) that each CTA of the wgmma kernel walks several query blocks of its
// head (K resident, Q prefetched, V resident at D 64 / streamed at D 128), dense and varlen.
TEST(Fused, ManyHeadsSeveralQueryBlocksPerCta) {
  ATTNFORGE_REQUIRE_GPU();
  int ran = 0;
  for (int d : {64, 128})
    for (const char* mask : {"none", "causal"}) {
      if (fused_limit(ATTNFORGE_BF16, d, mask) < 500) continue;
      Case c;
      c.head_dim = d;
      c.batch = 4;
      c.seqlen_q = 200;
      c.seqlen_k = mask[0] == 'n' ? 500 : 300;
      c.heads_q = 40;
      c.heads_kv = 8;
      c.mask = mask;
      c.return_weights = mask[0] == 'n';
      c.backward = d == 64;
      EXPECT_TRUE(check_case(c, kFused));
      Case vl = c;
      vl.varlen_q = {200, 0, 131, 64};
      vl.varlen_k = {300, 17, 0, 499};
      vl.return_weights = false;
      vl.backward = false;
      EXPECT_TRUE(check_case(vl, kFused));
      ++ran;
    }
  if (ran == 0) GTEST_SKIP() << "no fused bf16 hd64/hd128 variant with Sk >= 500 compiled";
}

// The mma.sync kernel (the path of non-Hopper GPUs and of head dims the wgmma kernel does not take),
// forced on this GPU with ATTNFORGE_FUSED_FWD_PATH=mma; the default run above took the wgmma kernel
// wherever it applies.
TEST(Fused, MmaSyncPathToo) {
  ATTNFORGE_REQUIRE_GPU();
  setenv("ATTNFORGE_FUSED_FWD_PATH", "mma", 1);
  int ran = 0;
  for (attnforge_dtype t : kDtypes)
    for (int d : {64, 128})
      for (const char* mask : {"causal", "bias"}) {
        const int limit = fused_limit(t, d, mask);
        if (limit == 0) continue;
        for (int sk : {113, std::min(limit, 512)}) {
          Case c;
          c.dtype = t;
          c.head_dim = d;
          c.batch = 2;
          c.seqlen_q = 130;
          c.seqlen_k = sk;
          c.heads_q = 4;
          c.heads_kv = 1;
          c.mask = mask;
          set_bias(c, sk);
          c.return_weights = true;
          c.backward = false;
          EXPECT_TRUE(check_case(c, kFused));
          ++ran;
        }
      }
  unsetenv("ATTNFORGE_FUSED_FWD_PATH");
  if (ran == 0) GTEST_SKIP() << "no fused hd64/hd128 variant compiled";
}

// A warp-specialized streamed tile (a producer warpgroup: warps = 4·(m/64 + 1)) runs its one-warpgroup
// form where TMA cannot describe Q, K or V (fused/fwd.cuh, StreamFallback); ATTNFORGE_FUSED_FWD_PATH=stream
// forces that form, so the path a refused layout takes runs here on every such variant: odd lengths, GQA,
// the weights with and without, the key row's limit, varlen with an empty sequence.
TEST(Fused, WarpSpecializedTilesFallBackToOneWarpgroup) {
  ATTNFORGE_REQUIRE_GPU();
  const attnforge::test::ScopedEnv path("ATTNFORGE_FUSED_FWD_PATH");
  path.set("stream");
  int ran = 0;
  for (const FusedVariant& v : compiled_fused_forward()) {
    if (v.warps != 4 * (v.block_m / 64 + 1)) continue;
    SCOPED_TRACE(v.name);
    for (int sk : {113, 300, v.limit}) {
      Case c;
      c.dtype = v.dtype;
      c.head_dim = v.head_dim;
      c.batch = 2;
      c.seqlen_q = 131;
      c.seqlen_k = sk;
      c.heads_q = 4;
      c.heads_kv = 2;
      c.mask = v.mask;
      set_bias(c, sk);
      c.return_weights = sk != 300;
      c.backward = false;
      EXPECT_TRUE(check_case(c, RunOptions{.variant = v.name.c_str()}));
    }
    if (v.mask != "bias") {  // packed sequences (the bias kinds run dense above)
      Case vl;
      vl.dtype = v.dtype;
      vl.head_dim = v.head_dim;
      vl.varlen_q = {70, 0, 201};
      vl.varlen_k = {129, 5, 0};
      vl.heads_q = 2;
      vl.heads_kv = 1;
      vl.mask = v.mask;
      set_bias(vl, 0);
      vl.backward = false;
      EXPECT_TRUE(check_case(vl, RunOptions{.variant = v.name.c_str()}));
    }
    ++ran;
  }
  if (ran == 0) GTEST_SKIP() << "no warp-specialized fused tile compiled (or not an sm_90 device)";
}

}  // namespace
