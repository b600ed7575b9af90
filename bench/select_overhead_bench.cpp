// attnforge-select-bench: the host-side overhead of a call whose selection is cached — argument
// validation, the memoized selection (which names the launch function: the dispatch) and the
// scratch sizing — everything attention() does on the host before its kernel. No kernel runs and no
// GPU is needed: the tensors' addresses are never dereferenced. Target (issue 5): < 2 µs.
//
//   BM_SelectVariantMemoHit   select_variant() alone on a memoized key (the dispatch decision)
//   BM_SelectBackendCApi      attnforge_select_backend(): validate + select + copy the reason
//   BM_HostPathNoKernel       attnforge_workspace_size(): validate + select + workspace sizing,
//                             i.e. the host path of attnforge_forward() up to the launch
//   BM_SelectVariantMemoMiss  the same decision with the memo cleared first (the cost the memo saves)
//   BM_CudaGetDevice          one cudaGetDevice, for scale (selection avoids it with one device)
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdlib>

#include "attnforge/attnforge.h"
#include "attnforge/attention.hpp"
#include "select.hpp"
#include "tune_lookup.hpp"

namespace {

void* const kFake = reinterpret_cast<void*>(uintptr_t(1) << 40);  // never dereferenced

attnforge_tensor dense(int64_t a, int64_t b, int64_t c, int64_t d) {  // contiguous (a, b, c, d), bf16
  return attnforge::Tensor(kFake, ATTNFORGE_BF16, {a, b, c, d}).c();
}

// A training-grid call: bf16, B=4, S=4096, H=16, D=128, causal, with an LSE.
attnforge_args training_args() {
  attnforge_args a;
  attnforge_args_init(&a);
  a.q = dense(4, 4096, 16, 128);
  a.k = a.v = dense(4, 4096, 16, 128);
  a.o = a.q;
  a.lse = attnforge_tensor{};
  a.lse.data = kFake;
  a.lse.dtype = ATTNFORGE_F32;
  a.lse.rank = 3;
  a.lse.sizes[0] = 4, a.lse.sizes[1] = 16, a.lse.sizes[2] = 4096;
  a.lse.strides[0] = 16 * 4096, a.lse.strides[1] = 4096, a.lse.strides[2] = 1;
  a.mask.kind = "causal";
  return a;
}

attnforge::Problem training_problem() {
  attnforge::Problem pr{};
  pr.direction = attnforge::Direction::fwd;
  pr.dtype = attnforge::DType::bf16;
  pr.batch = 4, pr.seqlen_q = 4096, pr.seqlen_k = 4096, pr.heads_q = 16, pr.heads_kv = 16, pr.head_dim = 128;
  pr.mask_id = 1;  // causal (MaskList position)
  pr.varlen = false, pr.wants_weights = false, pr.memory_budget = 0;
  return pr;
}

attnforge::Params training_params() {
  attnforge::Params p{};
  p.batch = 4, p.seqlen_q = 4096, p.seqlen_k = 4096, p.heads_q = 16, p.heads_kv = 16, p.head_dim = 128;
  p.total_q = p.total_k = 4 * 4096;
  p.lse = static_cast<float*>(kFake);
  return p;
}

void BM_SelectVariantMemoHit(benchmark::State& state) {
  const auto pr = training_problem();
  const auto p = training_params();
  attnforge::select_variant(pr, ATTNFORGE_BACKEND_AUTO, nullptr, p);  // warm the memo
  for (auto _ : state) {
    auto s = attnforge::select_variant(pr, ATTNFORGE_BACKEND_AUTO, nullptr, p);
    benchmark::DoNotOptimize(s.variant);
  }
}
BENCHMARK(BM_SelectVariantMemoHit);

void BM_SelectBackendCApi(benchmark::State& state) {
  const attnforge_args a = training_args();
  attnforge_backend chosen{};
  char variant[128], reason[1024];
  if (attnforge_select_backend(&a, 0, &chosen, variant, sizeof variant, reason, sizeof reason) != ATTNFORGE_OK) {
    state.SkipWithError(attnforge_last_error());
    return;
  }
  state.SetLabel(variant);
  for (auto _ : state) {
    attnforge_select_backend(&a, 0, &chosen, variant, sizeof variant, reason, sizeof reason);
    benchmark::DoNotOptimize(chosen);
  }
}
BENCHMARK(BM_SelectBackendCApi);

void BM_HostPathNoKernel(benchmark::State& state) {
  const attnforge_args a = training_args();
  size_t bytes = 0;
  if (attnforge_workspace_size(&a, 0, &bytes) != ATTNFORGE_OK) {
    state.SkipWithError(attnforge_last_error());
    return;
  }
  for (auto _ : state) {
    attnforge_workspace_size(&a, 0, &bytes);
    benchmark::DoNotOptimize(bytes);
  }
}
BENCHMARK(BM_HostPathNoKernel);

void BM_SelectVariantMemoMiss(benchmark::State& state) {
  const auto pr = training_problem();
  auto other = pr;
  other.batch = 3;
  const auto p = training_params();
  for (auto _ : state) {
    state.PauseTiming();
    attnforge::select_reset();  // drops the memo (and the loaded tune cache)
    attnforge::select_variant(other, ATTNFORGE_BACKEND_AUTO, nullptr, p);  // reload the cache untimed
    state.ResumeTiming();
    auto s = attnforge::select_variant(pr, ATTNFORGE_BACKEND_AUTO, nullptr, p);
    benchmark::DoNotOptimize(s.variant);
  }
}
BENCHMARK(BM_SelectVariantMemoMiss);

void BM_CudaGetDevice(benchmark::State& state) {
  int d = -1;
  if (cudaGetDevice(&d) != cudaSuccess) {
    (void)cudaGetLastError();
    state.SkipWithError("no CUDA device");
    return;
  }
  for (auto _ : state) {
    cudaGetDevice(&d);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_CudaGetDevice);

}  // namespace

BENCHMARK_MAIN();
