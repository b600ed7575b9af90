// The C API's host path on a GPU (runtime/src/c_api.cpp), with the always-built unfused backend:
// library-supplied LSE, caller workspaces (exact, misaligned, too small), non-default streams,
// threads (per-thread cuBLAS handles), rejected calls leave outputs untouched, and a failed kernel
// path reports a message. Results are checked against the fp64 reference (attention_case.hpp).
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "attention_case.hpp"
#include "tensor_view.hpp"

namespace {

using attnforge::test::Case;
using attnforge::test::check_case;
using attnforge::test::DeviceBuffer;
using attnforge::test::RunOptions;

Case small_case() {
  Case c;
  c.batch = 2, c.seqlen_q = 37, c.seqlen_k = 53, c.heads_q = 4, c.heads_kv = 2, c.head_dim = 64;
  c.mask = "causal";
  return c;
}

TEST(CApi, ForwardWithoutLseUsesATemporary) {
  ATTNFORGE_REQUIRE_GPU();
  Case c = small_case();
  c.pass_lse = false;
  EXPECT_TRUE(check_case(c));
}

TEST(CApi, CallerWorkspaces) {
  ATTNFORGE_REQUIRE_GPU();
  for (auto w : {RunOptions::Workspace::exact, RunOptions::Workspace::misaligned, RunOptions::Workspace::too_small}) {
    for (bool lse : {true, false}) {
      Case c = small_case();
      c.pass_lse = lse;
      RunOptions opt;
      opt.workspace = w;
      EXPECT_TRUE(check_case(c, opt)) << "workspace mode " << int(w);
    }
  }
}

TEST(CApi, WorkspaceSizeCoversTheTemporaryLse) {
  ATTNFORGE_REQUIRE_GPU();
  DeviceBuffer q(2 * 64 * 4 * 64 * 2), o(2 * 64 * 4 * 64 * 2), lse(2 * 4 * 64 * 4);
  attnforge_args a;
  attnforge_args_init(&a);
  const auto t = attnforge::test::contiguous_tensor;
  a.q = a.k = a.v = t(q.get(), ATTNFORGE_BF16, {2, 64, 4, 64});
  a.o = t(o.get(), ATTNFORGE_BF16, {2, 64, 4, 64});
  a.backend = ATTNFORGE_BACKEND_UNFUSED;
  size_t without = 0, with = 0;
  const attnforge_status st = attnforge_workspace_size(&a, 0, &without);
  if (attnforge::test::variant_not_built(st)) GTEST_SKIP() << "variant not built: " << attnforge_last_error();
  ASSERT_EQ(st, ATTNFORGE_OK) << attnforge_last_error();
  a.lse = t(lse.get(), ATTNFORGE_F32, {2, 4, 64});
  ASSERT_EQ(attnforge_workspace_size(&a, 0, &with), ATTNFORGE_OK) << attnforge_last_error();
  EXPECT_GE(without, with + 2 * 4 * 64 * sizeof(float));
}

TEST(CApi, NonDefaultStream) {
  ATTNFORGE_REQUIRE_GPU();
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  RunOptions opt;
  opt.stream = stream;
  Case c = small_case();
  c.varlen_q = {5, 0, 17}, c.varlen_k = {9, 4, 0};
  EXPECT_TRUE(check_case(c, opt));
  EXPECT_TRUE(check_case(small_case(), opt));
  ASSERT_EQ(cudaStreamDestroy(stream), cudaSuccess);
}

TEST(CApi, ThreadsWithTheirOwnHandles) {
  ATTNFORGE_REQUIRE_GPU();
  std::vector<std::string> failures(3);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([t, &failures] {
      cudaStream_t stream = nullptr;
      if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
        failures[size_t(t)] = "cudaStreamCreate failed";
        return;
      }
      RunOptions opt;
      opt.stream = stream;
      Case c = small_case();
      c.seed = uint64_t(100 + t);
      c.dtype = t == 0 ? ATTNFORGE_F32 : t == 1 ? ATTNFORGE_F16 : ATTNFORGE_BF16;
      for (int rep = 0; rep < 2; ++rep) {
        auto r = check_case(c, opt);
        if (!r) failures[size_t(t)] = r.message();
      }
      (void)cudaStreamDestroy(stream);
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 3; ++t) EXPECT_EQ(failures[size_t(t)], "") << "thread " << t;
}

TEST(CApi, RejectedCallWritesNothing) {
  ATTNFORGE_REQUIRE_GPU();
  const size_t n = 1 * 16 * 2 * 32;
  auto qv = attnforge::test::random_normal(n, 1, ATTNFORGE_F16);
  DeviceBuffer q = attnforge::test::upload(qv, ATTNFORGE_F16);
  DeviceBuffer o(n * 2);  // poisoned
  attnforge_args a;
  attnforge_args_init(&a);
  attnforge_tensor t{};
  t.data = q.get(), t.dtype = ATTNFORGE_F16, t.rank = 4;
  const int64_t sizes[4] = {1, 16, 2, 32}, strides[4] = {1024, 64, 32, 1};
  for (int i = 0; i < 4; ++i) t.sizes[i] = sizes[i], t.strides[i] = strides[i];
  a.q = a.k = a.v = t;
  a.o = t;
  a.o.data = o.get();
  a.o.dtype = ATTNFORGE_BF16;  // wrong dtype
  EXPECT_EQ(attnforge_forward(&a, nullptr), ATTNFORGE_INVALID_ARGUMENT);
  EXPECT_STREQ(attnforge_last_error(), "expected q and o to have the same dtype, got f16 and bf16");
  const auto out = attnforge::test::download(o, n, ATTNFORGE_F16);
  for (double x : out) ASSERT_TRUE(std::isnan(x)) << "a rejected call wrote its output";
}

}  // namespace
