// attnforge-bench: every backend × the standard grids of DESIGN.md (training, decode, classic),
// forward and backward, through the public C API only. Time = CUDA events around each call
// (Google Benchmark manual time); counters: TFLOP/s, GB/s (decode), device memory of the call,
// max|diff| from the unfused backend's output. Unbuilt backends/variants skip with the library's
// message (SkipWithError), visible in the table and the JSON.
//
// Memory counters (what "peak device memory of the call" means here):
//   mem_MiB    = bytes of every tensor the call reads or writes (one input set) + the workspace the
//                library asked for (attnforge_workspace_size), all cudaMalloc'd by this program and
//                handed to the call: the call's whole device footprint if it allocates nothing else;
//   hidden_MiB = the drop of cudaMemGetInfo's free memory across the first call: device memory the
//                library took on its own (should be 0; cuBLAS' first-use workspace shows up here).
#include <benchmark/benchmark.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "attnforge/attnforge.h"

namespace {

#define CUDA_CHECK(expr)                                                                        \
  do {                                                                                          \
    cudaError_t err_ = (expr);                                                                  \
    if (err_ != cudaSuccess)                                                                    \
      throw std::runtime_error(std::string(#expr) + ": " + cudaGetErrorString(err_));          \
  } while (0)

constexpr double kMiB = 1024.0 * 1024.0;

// ---- one benchmark configuration ---------------------------------------------------------------

struct Config {
  std::string grid;  // "train", "decode", "classic"
  int B, Sq, Sk, Hq, Hkv, D;
  bool causal;
  attnforge_dtype dtype;
};

size_t elem_bytes(attnforge_dtype t) { return t == ATTNFORGE_F32 ? 4 : t == ATTNFORGE_BOOL ? 1 : 2; }

// Visible (query, key) pairs: causal is bottom-right aligned, key j visible to i iff j <= i + Sk - Sq.
double visible_pairs(const Config& c) {
  if (!c.causal) return double(c.Sq) * c.Sk;
  double n = 0;
  for (int i = 0; i < c.Sq; ++i) n += std::clamp<long>(long(i) + c.Sk - c.Sq + 1, 0, c.Sk);
  return n;
}

// FLOPs (DESIGN.md): 4·B·H·(visible pairs)·D forward (= half of 4·B·H·S²·D for causal), ×2.5 backward.
double flops(const Config& c, bool bwd) {
  const double f = 4.0 * c.B * c.Hq * visible_pairs(c) * c.D;
  return bwd ? 2.5 * f : f;
}

// ---- device buffers and random data -------------------------------------------------------------

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : bytes(n) {
    if (n) CUDA_CHECK(cudaMalloc(&ptr, n));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
};

// A pool of random normals per dtype, uploaded once; tensors are filled by device-to-device copies
// from it at a per-tensor random offset (so no tensor is zeros or a copy of another). The pool
// length is odd so its period does not line up with rows or heads.
class RandomPool {
 public:
  static constexpr size_t kElems = (size_t(1) << 24) + 7;  // 16M values

  void fill(void* dst, size_t elems, attnforge_dtype t, std::mt19937_64& rng) {
    const DeviceBuffer& pool = get(t);
    const size_t es = elem_bytes(t);
    size_t offset = rng() % kElems, done = 0;
    while (done < elems) {
      const size_t n = std::min(elems - done, kElems - offset);
      CUDA_CHECK(cudaMemcpy(static_cast<char*>(dst) + done * es,
                            static_cast<const char*>(pool.ptr) + offset * es, n * es,
                            cudaMemcpyDeviceToDevice));
      done += n;
      offset = 0;
    }
  }

 private:
  const DeviceBuffer& get(attnforge_dtype t) {
    auto& slot = pools_[t];
    if (slot) return *slot;
    std::mt19937_64 rng(1234 + int(t));
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<char> host(kElems * elem_bytes(t));
    for (size_t i = 0; i < kElems; ++i) {
      const float x = normal(rng);
      if (t == ATTNFORGE_F32) reinterpret_cast<float*>(host.data())[i] = x;
      if (t == ATTNFORGE_F16) reinterpret_cast<__half*>(host.data())[i] = __float2half(x);
      if (t == ATTNFORGE_BF16) reinterpret_cast<__nv_bfloat16*>(host.data())[i] = __float2bfloat16(x);
    }
    slot = std::make_unique<DeviceBuffer>(host.size());
    CUDA_CHECK(cudaMemcpy(slot->ptr, host.data(), host.size(), cudaMemcpyHostToDevice));
    return *slot;
  }
  std::map<int, std::unique_ptr<DeviceBuffer>> pools_;
};

RandomPool& pool() {
  static RandomPool p;
  return p;
}

// Device tensor → host floats (for the max|diff| check).
std::vector<float> to_host(const void* src, size_t elems, attnforge_dtype t) {
  std::vector<char> raw(elems * elem_bytes(t));
  CUDA_CHECK(cudaMemcpy(raw.data(), src, raw.size(), cudaMemcpyDeviceToHost));
  std::vector<float> out(elems);
  for (size_t i = 0; i < elems; ++i) {
    if (t == ATTNFORGE_F32) out[i] = reinterpret_cast<const float*>(raw.data())[i];
    if (t == ATTNFORGE_F16) out[i] = __half2float(reinterpret_cast<const __half*>(raw.data())[i]);
    if (t == ATTNFORGE_BF16)
      out[i] = __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(raw.data())[i]);
  }
  return out;
}

// ---- the tensors of one configuration ---------------------------------------------------------

attnforge_tensor view(void* data, attnforge_dtype t, std::initializer_list<int64_t> sizes) {
  attnforge_tensor d{};
  d.data = data;
  d.dtype = t;
  d.rank = int32_t(sizes.size());
  int i = 0;
  for (int64_t s : sizes) d.sizes[i++] = s;
  int64_t stride = 1;  // contiguous, row-major
  for (int j = d.rank - 1; j >= 0; --j) {
    d.strides[j] = stride;
    stride *= d.sizes[j];
  }
  return d;
}

// Inputs are rotated among `sets` copies when one set fits in L2 twice over (so the timing does
// not measure the cache); outputs are shared. Kept alive across the benchmarks of one shape.
struct Fixture {
  Config c;
  bool bwd = false;
  int sets = 1;
  size_t q_elems = 0, kv_elems = 0, lse_elems = 0;
  std::vector<std::unique_ptr<DeviceBuffer>> q, k, v, d_o;  // (B, Sq, Hq, D), (B, Sk, Hkv, D)
  std::unique_ptr<DeviceBuffer> o, lse, dq, dk, dv;        // outputs

  size_t set_bytes() const {
    const size_t es = elem_bytes(c.dtype);
    return (q_elems * (bwd ? 2 : 1) + 2 * kv_elems) * es;
  }
  size_t call_bytes() const {  // every tensor one call touches
    const size_t es = elem_bytes(c.dtype);
    size_t n = (2 * q_elems + 2 * kv_elems) * es + lse_elems * 4;       // q, k, v, o, lse
    if (bwd) n += (2 * q_elems + 2 * kv_elems) * es;                    // d_o, dq, dk, dv
    return n;
  }
};

std::string fixture_key(const Config& c, bool bwd) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s/%d/%d/%d/%d/%d/%d/%d/%d/%d", c.grid.c_str(), c.B, c.Sq, c.Sk,
                c.Hq, c.Hkv, c.D, int(c.causal), int(c.dtype), int(bwd));
  return buf;
}

std::unique_ptr<Fixture>& current_fixture() {
  static std::unique_ptr<Fixture> f;
  return f;
}

Fixture& fixture_for(const Config& c, bool bwd) {
  auto& cur = current_fixture();
  if (cur && fixture_key(cur->c, cur->bwd) == fixture_key(c, bwd)) return *cur;
  cur.reset();  // free the previous shape's memory first
  auto f = std::make_unique<Fixture>();
  f->c = c;
  f->bwd = bwd;
  f->q_elems = size_t(c.B) * c.Sq * c.Hq * c.D;
  f->kv_elems = size_t(c.B) * c.Sk * c.Hkv * c.D;
  f->lse_elems = size_t(c.B) * c.Hq * c.Sq;
  int l2 = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  f->sets = int(std::clamp<size_t>(2 * size_t(l2) / std::max<size_t>(f->set_bytes(), 1) + 1, 1, 16));
  std::mt19937_64 rng(42);
  const size_t es = elem_bytes(c.dtype);
  for (int s = 0; s < f->sets; ++s) {
    f->q.push_back(std::make_unique<DeviceBuffer>(f->q_elems * es));
    f->k.push_back(std::make_unique<DeviceBuffer>(f->kv_elems * es));
    f->v.push_back(std::make_unique<DeviceBuffer>(f->kv_elems * es));
    pool().fill(f->q.back()->ptr, f->q_elems, c.dtype, rng);
    pool().fill(f->k.back()->ptr, f->kv_elems, c.dtype, rng);
    pool().fill(f->v.back()->ptr, f->kv_elems, c.dtype, rng);
    if (bwd) {
      f->d_o.push_back(std::make_unique<DeviceBuffer>(f->q_elems * es));
      pool().fill(f->d_o.back()->ptr, f->q_elems, c.dtype, rng);
    }
  }
  f->o = std::make_unique<DeviceBuffer>(f->q_elems * es);
  f->lse = std::make_unique<DeviceBuffer>(f->lse_elems * 4);
  if (bwd) {
    f->dq = std::make_unique<DeviceBuffer>(f->q_elems * es);
    f->dk = std::make_unique<DeviceBuffer>(f->kv_elems * es);
    f->dv = std::make_unique<DeviceBuffer>(f->kv_elems * es);
  }
  cur = std::move(f);
  return *cur;
}

// Arguments of one call on input set s, writing to the given outputs.
attnforge_args make_args(const Fixture& f, int s, attnforge_backend backend, void* o, void* lse,
                         void* dq, void* dk, void* dv) {
  const Config& c = f.c;
  attnforge_args a;
  attnforge_args_init(&a);
  a.q = view(f.q[s]->ptr, c.dtype, {c.B, c.Sq, c.Hq, c.D});
  a.k = view(f.k[s]->ptr, c.dtype, {c.B, c.Sk, c.Hkv, c.D});
  a.v = view(f.v[s]->ptr, c.dtype, {c.B, c.Sk, c.Hkv, c.D});
  a.o = view(o, c.dtype, {c.B, c.Sq, c.Hq, c.D});
  a.lse = view(lse, ATTNFORGE_F32, {c.B, c.Hq, c.Sq});
  if (f.bwd) {
    a.d_o = view(f.d_o[s]->ptr, c.dtype, {c.B, c.Sq, c.Hq, c.D});
    a.dq = view(dq, c.dtype, {c.B, c.Sq, c.Hq, c.D});
    a.dk = view(dk, c.dtype, {c.B, c.Sk, c.Hkv, c.D});
    a.dv = view(dv, c.dtype, {c.B, c.Sk, c.Hkv, c.D});
  }
  a.mask.kind = c.causal ? "causal" : "none";
  a.backend = backend;
  return a;
}

std::string library_error(attnforge_status st) {
  return std::string(attnforge_status_string(st)) + ": " + attnforge_last_error();
}

// Runs forward or backward with a workspace of exactly the size the library asks for.
attnforge_status call(attnforge_args& a, bool bwd, cudaStream_t stream, std::unique_ptr<DeviceBuffer>& ws) {
  size_t bytes = 0;
  attnforge_status st = attnforge_workspace_size(&a, bwd ? 1 : 0, &bytes);
  if (st != ATTNFORGE_OK) return st;
  if (!ws || ws->bytes < bytes) {
    ws.reset();
    ws = std::make_unique<DeviceBuffer>(bytes);
  }
  a.workspace = ws->ptr;
  a.workspace_bytes = bytes;
  return bwd ? attnforge_backward(&a, stream) : attnforge_forward(&a, stream);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= m)) m = std::isnan(d) ? NAN : d;  // a NaN anywhere makes the whole diff NaN
    if (std::isnan(m)) break;
  }
  return m;
}

size_t count_nan(const std::vector<float>& a) {
  return size_t(std::count_if(a.begin(), a.end(), [](float x) { return std::isnan(x); }));
}

// ---- the benchmark body -------------------------------------------------------------------------

void run_benchmark(benchmark::State& state, Config c, attnforge_backend backend, bool bwd) {
  try {
    Fixture& f = fixture_for(c, bwd);
    const size_t es = elem_bytes(c.dtype);
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    std::unique_ptr<cudaStream_t, void (*)(cudaStream_t*)> stream_guard(
        &stream, [](cudaStream_t* s) { cudaStreamDestroy(*s); });
    std::unique_ptr<DeviceBuffer> ws;

    // Backward needs O and LSE: this backend's own forward (set by set: each set's inputs).
    std::vector<std::unique_ptr<DeviceBuffer>> fwd_o, fwd_lse;
    if (bwd) {
      for (int s = 0; s < f.sets; ++s) {
        fwd_o.push_back(std::make_unique<DeviceBuffer>(f.q_elems * es));
        fwd_lse.push_back(std::make_unique<DeviceBuffer>(f.lse_elems * 4));
        attnforge_args a = make_args(f, s, backend, fwd_o[s]->ptr, fwd_lse[s]->ptr, nullptr, nullptr, nullptr);
        a.d_o = a.dq = a.dk = a.dv = attnforge_tensor{};
        attnforge_status st = call(a, false, stream, ws);
        if (st != ATTNFORGE_OK) {
          state.SkipWithError(("forward for backward: " + library_error(st)).c_str());
          return;
        }
      }
    }
    auto args_for = [&](int s) {
      if (!bwd) return make_args(f, s, backend, f.o->ptr, f.lse->ptr, nullptr, nullptr, nullptr);
      attnforge_args a = make_args(f, s, backend, fwd_o[s]->ptr, fwd_lse[s]->ptr, f.dq->ptr, f.dk->ptr, f.dv->ptr);
      return a;
    };

    // The checked call: outputs poisoned (0xFF bytes = NaN in f32/f16/bf16), memory measured.
    void* outs[3] = {bwd ? f.dq->ptr : f.o->ptr, bwd ? f.dk->ptr : nullptr, bwd ? f.dv->ptr : nullptr};
    size_t out_elems[3] = {f.q_elems, bwd ? f.kv_elems : 0, bwd ? f.kv_elems : 0};
    for (int i = 0; i < 3; ++i)
      if (outs[i]) CUDA_CHECK(cudaMemset(outs[i], 0xFF, out_elems[i] * es));
    attnforge_args a0 = args_for(0);
    size_t ws_bytes = 0;
    attnforge_status st = attnforge_workspace_size(&a0, bwd, &ws_bytes);
    if (st != ATTNFORGE_OK) {
      state.SkipWithError(library_error(st).c_str());
      return;
    }
    if (!ws || ws->bytes < ws_bytes) {
      ws.reset();
      ws = std::make_unique<DeviceBuffer>(ws_bytes);
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    size_t free_before = 0, free_after = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_before, &total));
    st = call(a0, bwd, stream, ws);
    if (st != ATTNFORGE_OK) {
      state.SkipWithError(library_error(st).c_str());
      return;
    }
    CUDA_CHECK(cudaStreamSynchronize(stream));
    CUDA_CHECK(cudaMemGetInfo(&free_after, &total));
    const double hidden = free_before > free_after ? double(free_before - free_after) : 0.0;
    std::vector<std::vector<float>> got(3);
    size_t nans = 0;
    for (int i = 0; i < 3; ++i)
      if (outs[i]) {
        got[i] = to_host(outs[i], out_elems[i], c.dtype);
        nans += count_nan(got[i]);
      }
    if (nans) {
      state.SkipWithError((std::to_string(nans) + " NaN in the output (poisoned before the call: "
                           "unwritten or NaN-producing)").c_str());
      return;
    }

    // Warm-up, then the timed loop: events around each call on its own, one input set after another.
    for (int w = 0; w < 3; ++w) {
      attnforge_args a = args_for(w % f.sets);
      st = call(a, bwd, stream, ws);
      if (st != ATTNFORGE_OK) {
        state.SkipWithError(library_error(st).c_str());
        return;
      }
    }
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    std::vector<double> times;
    std::vector<attnforge_args> args;
    for (int s = 0; s < f.sets; ++s) args.push_back(args_for(s));
    size_t it = 0;
    for (auto _ : state) {
      attnforge_args& a = args[it++ % f.sets];
      a.workspace = ws->ptr;
      a.workspace_bytes = ws_bytes;
      CUDA_CHECK(cudaEventRecord(start, stream));
      st = bwd ? attnforge_backward(&a, stream) : attnforge_forward(&a, stream);
      CUDA_CHECK(cudaEventRecord(stop, stream));
      CUDA_CHECK(cudaEventSynchronize(stop));
      if (st != ATTNFORGE_OK) {
        state.SkipWithError(library_error(st).c_str());
        break;
      }
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      state.SetIterationTime(ms * 1e-3);
      times.push_back(ms * 1e-3);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    if (times.empty()) return;
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];

    // max|diff| from the unfused backend on the same inputs (backward: the same O and LSE); after
    // the timing, with this backend's workspace freed, so that both fit at large S.
    ws.reset();
    double diff = -1;  // -1: no reference (see the label)
    std::string label;
    if (backend == ATTNFORGE_BACKEND_UNFUSED) {
      diff = 0;
    } else {
      try {
        std::unique_ptr<DeviceBuffer> rws, r0, r1, r2, rlse;
        r0 = std::make_unique<DeviceBuffer>(out_elems[0] * es);
        if (bwd) {
          r1 = std::make_unique<DeviceBuffer>(out_elems[1] * es);
          r2 = std::make_unique<DeviceBuffer>(out_elems[2] * es);
        } else {
          rlse = std::make_unique<DeviceBuffer>(f.lse_elems * 4);
        }
        attnforge_args r = bwd ? make_args(f, 0, ATTNFORGE_BACKEND_UNFUSED, fwd_o[0]->ptr, fwd_lse[0]->ptr,
                                           r0->ptr, r1->ptr, r2->ptr)
                               : make_args(f, 0, ATTNFORGE_BACKEND_UNFUSED, r0->ptr, rlse->ptr, nullptr,
                                           nullptr, nullptr);
        st = call(r, bwd, stream, rws);
        CUDA_CHECK(cudaStreamSynchronize(stream));
        if (st != ATTNFORGE_OK) {
          label = "no unfused reference: " + library_error(st);
        } else {
          diff = max_abs_diff(got[0], to_host(r0->ptr, out_elems[0], c.dtype));
          if (bwd) {
            diff = std::max(diff, max_abs_diff(got[1], to_host(r1->ptr, out_elems[1], c.dtype)));
            diff = std::max(diff, max_abs_diff(got[2], to_host(r2->ptr, out_elems[2], c.dtype)));
          }
        }
      } catch (const std::exception& e) {
        cudaGetLastError();  // a failed cudaMalloc is not sticky; clear it
        label = std::string("no unfused reference: ") + e.what();
      }
    }


    // Rates from the median event time (Google Benchmark's own rates would divide by CPU time).
    state.counters["TFLOP/s"] = flops(c, bwd) / median * 1e-12;
    if (c.grid == "decode")
      state.counters["GB/s"] = double(2 * f.kv_elems * es) / median * 1e-9;  // K + V bytes
    state.counters["median_ms"] = median * 1e3;
    state.counters["mem_MiB"] = double(f.call_bytes() + ws_bytes) / kMiB;
    state.counters["ws_MiB"] = double(ws_bytes) / kMiB;
    state.counters["hidden_MiB"] = hidden / kMiB;
    state.counters["max_diff"] = diff;
    state.counters["sets"] = f.sets;
    char sel[256] = "", reason[512] = "";
    attnforge_backend chosen = backend;
    if (attnforge_select_backend(&a0, bwd, &chosen, sel, sizeof sel, reason, sizeof reason) == ATTNFORGE_OK)
      label = std::string(sel) + (label.empty() ? "" : "; " + label);
    state.SetLabel(label);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// ---- the grids of DESIGN.md -----------------------------------------------------------------------

std::vector<Config> training_grid() {
  std::vector<Config> out;
  for (int D : {64, 128})
    for (int S = 512; S <= 16384; S *= 2)
      for (bool causal : {false, true})
        out.push_back({"train", 16384 / S, S, S, 2048 / D, 2048 / D, D, causal, ATTNFORGE_BF16});
  return out;
}

std::vector<Config> decode_grid() {
  std::vector<Config> out;
  for (int Sk : {1024, 8192, 32768}) out.push_back({"decode", 16, 1, Sk, 32, 32, 128, false, ATTNFORGE_BF16});
  return out;
}

// (S, d_model, B), causal: multi-head with D = 64 and D = 128 for every backend; single-head
// (H = 1, D = d_model) for the unfused backend only.
std::vector<std::pair<Config, bool>> classic_grid() {
  const int rows[5][3] = {{128, 512, 16}, {512, 768, 8}, {1024, 1024, 4}, {2048, 1024, 2}, {4096, 1024, 1}};
  std::vector<std::pair<Config, bool>> out;  // (config, unfused only)
  for (auto& r : rows) {
    for (int D : {64, 128})
      out.push_back({{"classic", r[2], r[0], r[0], r[1] / D, r[1] / D, D, true, ATTNFORGE_BF16}, false});
    out.push_back({{"classic", r[2], r[0], r[0], 1, 1, r[1], true, ATTNFORGE_BF16}, true});
  }
  return out;
}

std::string bench_name(const Config& c, attnforge_backend b, bool bwd) {
  char shape[64];
  if (c.Sq == c.Sk) std::snprintf(shape, sizeof shape, "S%d", c.Sq);
  else std::snprintf(shape, sizeof shape, "Sq%d_Sk%d", c.Sq, c.Sk);
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s/%s/%s/D%d/%s/%s/B%d_H%d", c.grid.c_str(), attnforge_backend_name(b),
                bwd ? "bwd" : "fwd", c.D, shape, c.causal ? "causal" : "none", c.B, c.Hq);
  return buf;
}

void register_one(const Config& c, attnforge_backend b, bool bwd) {
  benchmark::RegisterBenchmark(bench_name(c, b, bwd).c_str(),
                               [c, b, bwd](benchmark::State& st) { run_benchmark(st, c, b, bwd); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

void register_all() {
  const attnforge_backend backends[] = {ATTNFORGE_BACKEND_UNFUSED, ATTNFORGE_BACKEND_FUSED, ATTNFORGE_BACKEND_FLASH};
  // Grouped by shape (then backend): consecutive benchmarks share one Fixture (inputs on device).
  for (bool bwd : {false, true})
    for (const Config& c : training_grid())
      for (attnforge_backend b : backends) register_one(c, b, bwd);
  for (const Config& c : decode_grid())
    for (attnforge_backend b : backends) register_one(c, b, false);
  for (bool bwd : {false, true})
    for (auto& [c, unfused_only] : classic_grid())
      for (attnforge_backend b : backends)
        if (!unfused_only || b == ATTNFORGE_BACKEND_UNFUSED) register_one(c, b, bwd);
}

void add_context() {
  int dev = 0, count = 0;
  benchmark::AddCustomContext("attnforge_version", attnforge_version());
  benchmark::AddCustomContext("attnforge_variants", std::to_string(attnforge_variant_count()));
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    benchmark::AddCustomContext("device", "none");
    return;
  }
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess) {
    benchmark::AddCustomContext("device", prop.name);
    benchmark::AddCustomContext("device_sms", std::to_string(prop.multiProcessorCount));
    benchmark::AddCustomContext("device_mem_GiB", std::to_string(prop.totalGlobalMem / double(1 << 30)));
  }
  benchmark::AddCustomContext("memory_counters",
                              "mem_MiB = tensors + library-requested workspace (cudaMalloc'd here); "
                              "hidden_MiB = cudaMemGetInfo drop across the first call");
}

}  // namespace

int main(int argc, char** argv) {
  bool list_only = false;  // --benchmark_list_tests works without a GPU (names only)
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--benchmark_list_tests", 22) == 0 && std::strstr(argv[i], "false") == nullptr)
      list_only = true;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  int count = 0;
  if (!list_only && (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)) {
    std::fprintf(stderr, "attnforge-bench: no CUDA device; nothing to time.\n");
    return 0;
  }
  if (!list_only) add_context();
  benchmark::RunSpecifiedBenchmarks();
  current_fixture().reset();
  benchmark::Shutdown();
  return 0;
}
