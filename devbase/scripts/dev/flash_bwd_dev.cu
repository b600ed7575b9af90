// Standalone dev driver for the flash backward (not part of the library): random inputs, fp32 GPU
// reference (forward O/LSE and backward), error report, determinism, CUDA-event timing on the
// training grid. Build and run: scripts/dev/flash_bwd_devrun.sh (nvcc ... -DGROUP=n this file).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "flash/bwd.cuh"
#define ATTNFORGE_DEV_RUN_BWD flash::run_bwd
#include "masks.hpp"

using namespace attnforge;

// Hand-written variants (independent of the committed generated/variants.hpp).
template <DType T, int D, class M, int BM, int BN, int W, int S, int A = 0>
using FB = Variant<Backend::flash, Direction::bwd, T, D, M, Tile<BM, BN, W, S, A>>;


#define CK(x)                                                                             \
  do {                                                                                    \
    cudaError_t e_ = (x);                                                                 \
    if (e_ != cudaSuccess) {                                                              \
      fprintf(stderr, "CUDA %s at %s:%d: %s\n", #x, __FILE__, __LINE__, cudaGetErrorString(e_)); \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

constexpr float kLog2e = 1.4426950408889634f;

// ---- fp32 reference kernels (naive, one thread per row) -----------------------------------------
template <class T, class M>
__device__ bool ref_score(const Params& p, int b, int h, int i, int j, const SeqInfo& si, const T* q, const T* k,
                          float& s) {
  if (!M::visible(i, j, si.seqlen_q, si.seqlen_k, p.mask)) return false;
  const int hk = h / p.group();
  const T* qr = q + b * p.q_batch_stride + (si.q_start + i) * p.q_row_stride + h * p.q_head_stride;
  const T* kr = k + b * p.k_batch_stride + (si.k_start + j) * p.k_row_stride + hk * p.k_head_stride;
  float acc = 0.f;
  for (int d = 0; d < p.head_dim; ++d) acc += float(qr[d]) * float(kr[d]);
  s = acc * p.scale;
  if constexpr (M::kHasTensor) {
    const int64_t off = b * p.bias_stride_b + h * p.bias_stride_h + int64_t(i) * p.bias_stride_q +
                        int64_t(j) * p.bias_stride_k;
    if (p.bias_dtype == ATTNFORGE_BOOL) {
      if (static_cast<const uint8_t*>(p.bias)[off] == 0) return false;
    } else {
      s += static_cast<const float*>(p.bias)[off];
    }
  }
  return true;
}

// O (fp32 and T), LSE; D_i = rowsum(dO ∘ O) and dQ_i.
template <class T, class M>
__global__ void ref_rows(Params p, float* o32, float* dsum, float* dq32) {
  const int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * blockDim.x + threadIdx.x;
  const SeqInfo si = seq_info(p, b);
  if (i >= si.seqlen_q) return;
  const T* q = (const T*)p.q;
  const T* k = (const T*)p.k;
  const T* v = (const T*)p.v;
  const T* dO = (const T*)p.d_o;
  const int hk = h / p.group();
  const int D = p.head_dim;
  float mx = -INFINITY;
  for (int j = 0; j < si.seqlen_k; ++j) {
    float s;
    if (ref_score<T, M>(p, b, h, i, j, si, q, k, s)) mx = fmaxf(mx, s);
  }
  float o[256], dqv[256];
  for (int d = 0; d < D; ++d) o[d] = dqv[d] = 0.f;
  float l = 0.f;
  if (mx != -INFINITY) {
    for (int j = 0; j < si.seqlen_k; ++j) {
      float s;
      if (!ref_score<T, M>(p, b, h, i, j, si, q, k, s)) continue;
      const float pe = expf(s - mx);
      l += pe;
      const T* vr = v + b * p.v_batch_stride + (si.k_start + j) * p.v_row_stride + hk * p.v_head_stride;
      for (int d = 0; d < D; ++d) o[d] += pe * float(vr[d]);
    }
  }
  const float lse = l > 0.f ? mx + logf(l) : -INFINITY;
  const int64_t t = p.is_varlen() ? si.q_start + i : int64_t(b) * p.seqlen_q + i;
  T* og = (T*)p.o + b * p.o_batch_stride + (si.q_start + i) * p.o_row_stride + h * p.o_head_stride;
  const T* dor = dO + b * p.do_batch_stride + (si.q_start + i) * p.do_row_stride + h * p.do_head_stride;
  float ds = 0.f;
  for (int d = 0; d < D; ++d) {
    o[d] = l > 0.f ? o[d] / l : 0.f;
    og[d] = T(o[d]);
    o32[(t * p.heads_q + h) * D + d] = o[d];
    ds += o[d] * float(dor[d]);
  }
  p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + si.q_start + i] = lse;
  dsum[h * p.total_q + t] = ds;
  if (l > 0.f) {
    for (int j = 0; j < si.seqlen_k; ++j) {
      float s;
      if (!ref_score<T, M>(p, b, h, i, j, si, q, k, s)) continue;
      const float pe = expf(s - lse);
      const T* vr = v + b * p.v_batch_stride + (si.k_start + j) * p.v_row_stride + hk * p.v_head_stride;
      const T* kr = k + b * p.k_batch_stride + (si.k_start + j) * p.k_row_stride + hk * p.k_head_stride;
      float dp = 0.f;
      for (int d = 0; d < D; ++d) dp += float(dor[d]) * float(vr[d]);
      const float dsv = pe * (dp - ds);
      for (int d = 0; d < D; ++d) dqv[d] += dsv * float(kr[d]) * p.scale;
    }
  }
  for (int d = 0; d < D; ++d) dq32[(t * p.heads_q + h) * D + d] = dqv[d];
}

// dK_j, dV_j summed over the query heads of the group.
template <class T, class M>
__global__ void ref_cols(Params p, const float* dsum, float* dk32, float* dv32) {
  const int b = blockIdx.z, hk = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
  const SeqInfo si = seq_info(p, b);
  if (j >= si.seqlen_k) return;
  const T* q = (const T*)p.q;
  const T* k = (const T*)p.k;
  const T* v = (const T*)p.v;
  const T* dO = (const T*)p.d_o;
  const int D = p.head_dim;
  float dk[256], dv[256];
  for (int d = 0; d < D; ++d) dk[d] = dv[d] = 0.f;
  const T* vr = v + b * p.v_batch_stride + (si.k_start + j) * p.v_row_stride + hk * p.v_head_stride;
  for (int h = hk * p.group(); h < (hk + 1) * p.group(); ++h) {
    for (int i = 0; i < si.seqlen_q; ++i) {
      float s;
      if (!ref_score<T, M>(p, b, h, i, j, si, q, k, s)) continue;
      const float lse = p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + si.q_start + i];
      const float pe = expf(s - lse);
      const T* dor = dO + b * p.do_batch_stride + (si.q_start + i) * p.do_row_stride + h * p.do_head_stride;
      const T* qr = q + b * p.q_batch_stride + (si.q_start + i) * p.q_row_stride + h * p.q_head_stride;
      const int64_t t = p.is_varlen() ? si.q_start + i : int64_t(b) * p.seqlen_q + i;
      float dp = 0.f;
      for (int d = 0; d < D; ++d) dp += float(dor[d]) * float(vr[d]);
      const float dsv = pe * (dp - dsum[h * p.total_q + t]);
      for (int d = 0; d < D; ++d) {
        dv[d] += pe * float(dor[d]);
        dk[d] += dsv * float(qr[d]) * p.scale;
      }
    }
  }
  const int64_t t = p.is_varlen() ? si.k_start + j : int64_t(b) * p.seqlen_k + j;
  for (int d = 0; d < D; ++d) {
    dk32[(t * p.heads_kv + hk) * D + d] = dk[d];
    dv32[(t * p.heads_kv + hk) * D + d] = dv[d];
  }
}

// ---- problem setup -------------------------------------------------------------------------------
struct Case {
  int B, Sq, Sk, Hq, Hkv;
  bool varlen = false;
  std::vector<int> lens_q, lens_k;  // varlen
  int window_left = -1, window_right = -1;
  int bias_kind = 0;  // 0 none, 1 f32 additive, 2 bool
  bool deterministic = false;
  bool fully_masked_rows = false;  // bias: mask every key of some rows
  bool nan_invisible_keys = false; // NaN in K and V rows no query can see (must change nothing)
};

template <class T>
static void fill_random(T* d, size_t n, std::mt19937& rng, float sd = 1.f) {
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<T> h(n);
  for (auto& x : h) x = T(nd(rng));
  CK(cudaMemcpy(d, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
}

template <class T>
static std::vector<float> to_host_f(const T* d, size_t n) {
  std::vector<T> h(n);
  CK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = float(h[i]);
  return f;
}

struct Buffers {
  void *q, *k, *v, *o, *dO, *dq, *dk, *dv, *ws, *bias = nullptr;
  float *lse, *o32, *dsum, *dq32, *dk32, *dv32;
  int32_t *cuq = nullptr, *cuk = nullptr;
};

template <class V>
static bool run_case(const Case& cs, const char* name, int det_runs = 0) {
  using Tr = flash::bwd_detail::BwdTraits<typename flash::BwdSm90Fallback<V>::type>;  // element type, workspace layout
  using T = typename Tr::T;
  using M = typename V::Mask;
  constexpr int D = V::kHeadDim;
  std::mt19937 rng(1234 + cs.Sq * 7 + cs.Sk);
  Params p{};
  int64_t tq, tk;
  std::vector<int> cq{0}, ck{0};
  if (cs.varlen) {
    for (size_t i = 0; i < cs.lens_q.size(); ++i) {
      cq.push_back(cq.back() + cs.lens_q[i]);
      ck.push_back(ck.back() + cs.lens_k[i]);
    }
    tq = cq.back();
    tk = ck.back();
  } else {
    tq = int64_t(cs.B) * cs.Sq;
    tk = int64_t(cs.B) * cs.Sk;
  }
  Buffers bf;
  const size_t nq = size_t(tq) * cs.Hq * D, nk = size_t(tk) * cs.Hkv * D;
  CK(cudaMalloc(&bf.q, nq * 2));
  CK(cudaMalloc(&bf.o, nq * 2));
  CK(cudaMalloc(&bf.dO, nq * 2));
  CK(cudaMalloc(&bf.dq, nq * 2));
  CK(cudaMalloc(&bf.k, nk * 2));
  CK(cudaMalloc(&bf.v, nk * 2));
  CK(cudaMalloc(&bf.dk, nk * 2));
  CK(cudaMalloc(&bf.dv, nk * 2));
  CK(cudaMalloc(&bf.lse, size_t(tq) * cs.Hq * 4 + 16));
  CK(cudaMalloc(&bf.o32, nq * 4));
  CK(cudaMalloc(&bf.dq32, nq * 4));
  CK(cudaMalloc(&bf.dsum, size_t(tq) * cs.Hq * 4 + 16));
  CK(cudaMalloc(&bf.dk32, nk * 4));
  CK(cudaMalloc(&bf.dv32, nk * 4));
  fill_random((T*)bf.q, nq, rng);
  fill_random((T*)bf.k, nk, rng);
  fill_random((T*)bf.v, nk, rng);
  fill_random((T*)bf.dO, nq, rng);

  if (cs.nan_invisible_keys && !cs.varlen) {
    MaskScalars ms{};
    ms.v[0] = cs.window_left;
    ms.v[1] = cs.window_right;
    std::vector<T> hk(nk), hv(nk);
    CK(cudaMemcpy(hk.data(), bf.k, nk * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hv.data(), bf.v, nk * 2, cudaMemcpyDeviceToHost));
    int poisoned = 0;
    for (int j = 0; j < cs.Sk; ++j) {
      bool seen = false;
      for (int i = 0; i < cs.Sq && !seen; ++i) seen = M::visible(i, j, cs.Sq, cs.Sk, ms);
      if (seen) continue;
      ++poisoned;
      for (int b = 0; b < cs.B; ++b)
        for (size_t e = 0; e < size_t(cs.Hkv) * D; ++e) {
          const size_t idx = (size_t(b) * cs.Sk + j) * cs.Hkv * D + e;
          hk[idx] = T(NAN);
          hv[idx] = T(NAN);
        }
    }
    CK(cudaMemcpy(bf.k, hk.data(), nk * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(bf.v, hv.data(), nk * 2, cudaMemcpyHostToDevice));
    printf("  (NaN in K/V rows of %d never-visible keys)\n", poisoned);
  }
  p.q = bf.q; p.k = bf.k; p.v = bf.v; p.o = bf.o; p.lse = bf.lse; p.d_o = bf.dO;
  p.dq = bf.dq; p.dk = bf.dk; p.dv = bf.dv;
  const int64_t rq = int64_t(cs.Hq) * D, rk = int64_t(cs.Hkv) * D;
  p.q_row_stride = p.o_row_stride = p.do_row_stride = p.dq_row_stride = rq;
  p.q_head_stride = p.o_head_stride = p.do_head_stride = p.dq_head_stride = D;
  p.k_row_stride = p.v_row_stride = p.dk_row_stride = p.dv_row_stride = rk;
  p.k_head_stride = p.v_head_stride = p.dk_head_stride = p.dv_head_stride = D;
  if (!cs.varlen) {
    p.q_batch_stride = p.o_batch_stride = p.do_batch_stride = p.dq_batch_stride = cs.Sq * rq;
    p.k_batch_stride = p.v_batch_stride = p.dk_batch_stride = p.dv_batch_stride = cs.Sk * rk;
    p.lse_batch_stride = int64_t(cs.Hq) * cs.Sq;
    p.lse_head_stride = cs.Sq;
    p.batch = cs.B;
    p.seqlen_q = cs.Sq;
    p.seqlen_k = cs.Sk;
  } else {
    p.lse_batch_stride = 0;
    p.lse_head_stride = tq;
    p.batch = int(cs.lens_q.size());
    p.seqlen_q = *std::max_element(cs.lens_q.begin(), cs.lens_q.end());
    p.seqlen_k = *std::max_element(cs.lens_k.begin(), cs.lens_k.end());
    CK(cudaMalloc(&bf.cuq, cq.size() * 4));
    CK(cudaMalloc(&bf.cuk, ck.size() * 4));
    CK(cudaMemcpy(bf.cuq, cq.data(), cq.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(bf.cuk, ck.data(), ck.size() * 4, cudaMemcpyHostToDevice));
    p.cu_seqlens_q = bf.cuq;
    p.cu_seqlens_k = bf.cuk;
  }
  p.heads_q = cs.Hq;
  p.heads_kv = cs.Hkv;
  p.head_dim = D;
  p.total_q = tq;
  p.total_k = tk;
  p.scale = 1.f / std::sqrt(float(D));
  p.scale_log2 = p.scale * kLog2e;
  p.mask.v[0] = cs.window_left;
  p.mask.v[1] = cs.window_right;
  p.deterministic = cs.deterministic;
  if (cs.bias_kind) {
    // (B, Hq, Sq, Sk) dense (varlen not combined with bias here)
    const size_t n = size_t(p.batch) * cs.Hq * p.seqlen_q * p.seqlen_k;
    p.bias_stride_k = 1;
    p.bias_stride_q = p.seqlen_k;
    p.bias_stride_h = int64_t(p.seqlen_q) * p.seqlen_k;
    p.bias_stride_b = int64_t(cs.Hq) * p.bias_stride_h;
    if (cs.bias_kind == 1) {
      CK(cudaMalloc(&bf.bias, n * 4));
      std::vector<float> h(n);
      std::normal_distribution<float> nd(0.f, 1.f);
      for (size_t i = 0; i < n; ++i) h[i] = nd(rng);
      if (cs.fully_masked_rows)  // row 3 of every (b, h) sees nothing
        for (size_t bh = 0; bh < size_t(p.batch) * cs.Hq; ++bh)
          for (int j = 0; j < p.seqlen_k; ++j) h[(bh * p.seqlen_q + 3) * p.seqlen_k + j] = -INFINITY;
      CK(cudaMemcpy(bf.bias, h.data(), n * 4, cudaMemcpyHostToDevice));
      p.bias_dtype = ATTNFORGE_F32;
    } else {
      CK(cudaMalloc(&bf.bias, n));
      std::vector<uint8_t> h(n);
      for (size_t i = 0; i < n; ++i) h[i] = (rng() % 4) != 0;
      if (cs.fully_masked_rows)
        for (size_t bh = 0; bh < size_t(p.batch) * cs.Hq; ++bh)
          for (int j = 0; j < p.seqlen_k; ++j) h[(bh * p.seqlen_q + 3) * p.seqlen_k + j] = 0;
      CK(cudaMemcpy(bf.bias, h.data(), n, cudaMemcpyHostToDevice));
      p.bias_dtype = ATTNFORGE_BOOL;
    }
    p.bias = bf.bias;
  }
  p.workspace_bytes = flash::flash_bwd_workspace_bytes(Tr::kBlockM, Tr::kBlockN, p);
  CK(cudaMalloc(&p.workspace, p.workspace_bytes + 256));

  // Reference forward + backward (fp32); O (in T) and LSE feed the flash backward.
  {
    dim3 blk(64);
    ref_rows<T, M><<<dim3((p.seqlen_q + 63) / 64, cs.Hq, p.batch), blk>>>(p, bf.o32, bf.dsum, bf.dq32);
    CK(cudaGetLastError());
    ref_cols<T, M><<<dim3((p.seqlen_k + 63) / 64, cs.Hkv, p.batch), blk>>>(p, bf.dsum, bf.dk32, bf.dv32);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
  }
  CK(cudaMemset(bf.dq, 0xff, nq * 2));
  CK(cudaMemset(bf.dk, 0xff, nk * 2));
  CK(cudaMemset(bf.dv, 0xff, nk * 2));
  attnforge_status st = ATTNFORGE_DEV_RUN_BWD<V>(p, 0);
  CK(cudaDeviceSynchronize());
  if (st != ATTNFORGE_OK) {
    printf("FAIL %s: status %d\n", name, int(st));
    return false;
  }
  // Errors relative to the largest reference gradient of the three (dQ, dK can be ~0 where dV is
  // not, e.g. Sk = 1: P = 1, dS = 0 up to rounding).
  double gscale = 1e-6;
  for (auto [ptr, n] : {std::pair<const float*, size_t>{bf.dq32, nq}, {bf.dk32, nk}, {bf.dv32, nk}}) {
    std::vector<float> r(n);
    CK(cudaMemcpy(r.data(), ptr, n * 4, cudaMemcpyDeviceToHost));
    for (float x : r) gscale = std::max(gscale, double(std::fabs(x)));
  }
  auto cmp = [&](const void* got, const float* ref, size_t n, const char* what, float& rel) {
    auto g = to_host_f((const T*)got, n);
    std::vector<float> r(n);
    CK(cudaMemcpy(r.data(), ref, n * 4, cudaMemcpyDeviceToHost));
    double err = 0, mx = 0;
    size_t nan = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(g[i])) { ++nan; continue; }
      err = std::max(err, double(std::fabs(g[i] - r[i])));
      mx = std::max(mx, double(std::fabs(r[i])));
    }
    rel = float(err / gscale);
    (void)mx;
    return nan == 0 ? 0 : int(nan);
  };
  float rq_, rk_, rv_;
  int nan = cmp(bf.dq, bf.dq32, nq, "dq", rq_) + cmp(bf.dk, bf.dk32, nk, "dk", rk_) +
            cmp(bf.dv, bf.dv32, nk, "dv", rv_);
  bool ok = nan == 0 && rq_ < 2e-2f && rk_ < 2e-2f && rv_ < 2e-2f;
  bool det_ok = true;
  if (det_runs > 0) {
    auto h0q = to_host_f((const T*)bf.dq, nq);
    auto h0k = to_host_f((const T*)bf.dk, nk);
    auto h0v = to_host_f((const T*)bf.dv, nk);
    for (int r = 0; r < det_runs && det_ok; ++r) {
      CK(cudaMemset(bf.dq, 0xff, nq * 2));
      ATTNFORGE_DEV_RUN_BWD<V>(p, 0);
      CK(cudaDeviceSynchronize());
      auto hq = to_host_f((const T*)bf.dq, nq);
      auto hk = to_host_f((const T*)bf.dk, nk);
      auto hv = to_host_f((const T*)bf.dv, nk);
      det_ok = memcmp(hq.data(), h0q.data(), nq * 4) == 0 && memcmp(hk.data(), h0k.data(), nk * 4) == 0 &&
               memcmp(hv.data(), h0v.data(), nk * 4) == 0;
    }
    ok = ok && det_ok;
  }
  printf("%s %-44s B=%d Sq=%d Sk=%d Hq=%d Hkv=%d%s det=%d: rel err dq %.2e dk %.2e dv %.2e nonfinite %d%s\n",
         ok ? "PASS" : "FAIL", name, p.batch, p.seqlen_q, p.seqlen_k, cs.Hq, cs.Hkv, cs.varlen ? " varlen" : "",
         int(cs.deterministic), rq_, rk_, rv_, nan,
         det_runs ? (det_ok ? " bitwise-equal" : " NOT-BITWISE-EQUAL") : "");
  for (void* x : {bf.q, bf.k, bf.v, bf.o, bf.dO, bf.dq, bf.dk, bf.dv, p.workspace, (void*)bf.lse, (void*)bf.o32,
                  (void*)bf.dq32, (void*)bf.dsum, (void*)bf.dk32, (void*)bf.dv32, bf.bias, (void*)bf.cuq,
                  (void*)bf.cuk})
    if (x) CK(cudaFree(x));
  return ok;
}

// Fast device-side fill for the timing runs: hash → approximately normal (sum of 4 uniforms).
__global__ void fill_kernel(__nv_bfloat16* x, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    float acc = 0.f;
    for (int r = 0; r < 4; ++r) {
      h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
      acc += (h & 0xffffff) / float(0x1000000) - 0.5f;
    }
    x[i] = __float2bfloat16(acc * 1.7320508f);  // variance 4/12 → ×√3 ≈ unit variance
  }
}

// Timing on the training grid: random O/LSE (the backward's cost does not depend on them).
template <class V>
static void time_case(int S, bool causal_flag, const char* name) {
  using Tr = flash::bwd_detail::BwdTraits<typename flash::BwdSm90Fallback<V>::type>;  // element type, workspace layout
  constexpr int D = V::kHeadDim;
  const int B = 16384 / S, H = 2048 / D;
  Params p{};
  const size_t n = size_t(B) * S * H * D;
  void *q, *k, *v, *o, *dO, *dq, *dk, *dv, *ws;
  float* lse;
  for (void** x : {&q, &k, &v, &o, &dO, &dq, &dk, &dv}) CK(cudaMalloc(x, n * 2));
  CK(cudaMalloc(&lse, size_t(B) * H * S * 4));
  uint32_t seed = 7;
  for (void* x : {q, k, v, o, dO}) fill_kernel<<<1024, 256>>>((__nv_bfloat16*)x, n, seed++);
  CK(cudaGetLastError());
  {
    std::vector<float> h(size_t(B) * H * S, 6.0f);
    CK(cudaMemcpy(lse, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
  }
  p.q = q; p.k = k; p.v = v; p.o = o; p.d_o = dO; p.dq = dq; p.dk = dk; p.dv = dv; p.lse = lse;
  const int64_t rs = int64_t(H) * D, bs = int64_t(S) * rs;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = p.do_row_stride = p.dq_row_stride =
      p.dk_row_stride = p.dv_row_stride = rs;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = p.do_head_stride = p.dq_head_stride =
      p.dk_head_stride = p.dv_head_stride = D;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = p.do_batch_stride =
      p.dq_batch_stride = p.dk_batch_stride = p.dv_batch_stride = bs;
  p.lse_batch_stride = int64_t(H) * S;
  p.lse_head_stride = S;
  p.batch = B; p.seqlen_q = p.seqlen_k = S; p.heads_q = p.heads_kv = H; p.head_dim = D;
  p.total_q = p.total_k = int64_t(B) * S;
  p.scale = 1.f / std::sqrt(float(D));
  p.scale_log2 = p.scale * kLog2e;
  p.workspace_bytes = flash::flash_bwd_workspace_bytes(Tr::kBlockM, Tr::kBlockN, p);
  CK(cudaMalloc(&ws, p.workspace_bytes));
  p.workspace = ws;
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) ATTNFORGE_DEV_RUN_BWD<V>(p, 0);
  CK(cudaDeviceSynchronize());
  const int iters = 10;
  CK(cudaEventRecord(e0));
  for (int i = 0; i < iters; ++i) ATTNFORGE_DEV_RUN_BWD<V>(p, 0);
  CK(cudaEventRecord(e1));
  CK(cudaEventSynchronize(e1));
  CK(cudaGetLastError());
  float ms;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  ms /= iters;
  const double flops = 4.0 * B * H * double(S) * S * D * (causal_flag ? 0.5 : 1.0) * 2.5;
  printf("TIME %-44s D=%d S=%5d B=%2d H=%2d causal=%d  %.3f ms  %.1f TFLOP/s\n", name, D, S, B, H,
         int(causal_flag), ms, flops / (ms * 1e-3) / 1e12);
  for (void* x : {q, k, v, o, dO, dq, dk, dv, ws, (void*)lse}) CK(cudaFree(x));
}

using bf16_hd64_none_m64n64w4s2 = FB<DType::bf16, 64, generated::mask::none, 64, 64, 4, 2>;
using bf16_hd64_causal_m64n64w4s2 = FB<DType::bf16, 64, generated::mask::causal, 64, 64, 4, 2>;
using bf16_hd64_window_m64n64w4s2 = FB<DType::bf16, 64, generated::mask::window, 64, 64, 4, 2>;
using bf16_hd128_window_m64n128w8s2 = FB<DType::bf16, 128, generated::mask::window, 64, 128, 8, 2>;
using bf16_hd64_bias_m64n64w4s2 = FB<DType::bf16, 64, generated::mask::bias, 64, 64, 4, 2>;
using bf16_hd128_causal_m64n128w8s2 = FB<DType::bf16, 128, generated::mask::causal, 64, 128, 8, 2>;
using bf16_hd128_none_m64n128w8s2 = FB<DType::bf16, 128, generated::mask::none, 64, 128, 8, 2>;
using f16_hd128_causal_m64n64w4s2 = FB<DType::f16, 128, generated::mask::causal, 64, 64, 4, 2>;
using bf16_hd64_none_m64n128w8s2 = FB<DType::bf16, 64, generated::mask::none, 64, 128, 8, 2>;
using bf16_hd32_causal_m64n128w8s2 = FB<DType::bf16, 32, generated::mask::causal, 64, 128, 8, 2>;
using bf16_hd96_causal_m64n64w4s2 = FB<DType::bf16, 96, generated::mask::causal, 64, 64, 4, 2>;
using bf16_hd192_causal_m64n64w8s2 = FB<DType::bf16, 192, generated::mask::causal, 64, 64, 8, 2>;
using bf16_hd256_causal_m64n64w8s2 = FB<DType::bf16, 256, generated::mask::causal, 64, 64, 8, 2>;
using bf16_hd256_none_m64n32w4s2 = FB<DType::bf16, 256, generated::mask::none, 64, 32, 4, 2>;
using bf16_hd64_causal_m64n128w8s2 = FB<DType::bf16, 64, generated::mask::causal, 64, 128, 8, 2>;
using bf16_hd128_none_m64n64w4s2 = FB<DType::bf16, 128, generated::mask::none, 64, 64, 4, 2>;

#ifndef GROUP
#define GROUP 0
#endif

// Varlen batch of five sequences, empty query and key sequences among them (Hq 4, Hkv 2).
static Case varlen_case() {
  Case c{0, 0, 0, 4, 2};
  c.varlen = true;
  c.lens_q = {100, 0, 257, 64, 1};
  c.lens_k = {130, 50, 257, 0, 1};
  return c;
}

// A window (50 left, 7 right) with NaN in the keys no query sees, and deterministic mode (mma.sync on
// every path), as the Hopper groups run them.
static Case window_nan_case() {
  Case c{2, 333, 411, 4, 2};
  c.window_left = 50;
  c.window_right = 7;
  c.nan_invisible_keys = true;
  return c;
}
static Case deterministic_case() {
  Case c{2, 517, 700, 4, 2};
  c.deterministic = true;
  return c;
}

// Whether the comma-separated list in environment variable `env` names n.
static bool listed(const char* env, int n) {
  const std::string list = std::string(",") + std::getenv(env) + ",";
  return list.find("," + std::to_string(n) + ",") != std::string::npos;
}

#if GROUP == 5
// The split step at head dim D (bf16 none / causal / window, f16 causal) and its mma.sync fallback:
// checks, or times (DEV_S: the sequence lengths).
template <int D>
static bool split_group_one(const std::vector<std::pair<int, int>>& pairs, bool do_time) {
  using Zn = FB<DType::bf16, D, generated::mask::none, 64, 64, 12, 2, 90>;
  using Zc = FB<DType::bf16, D, generated::mask::causal, 64, 64, 12, 2, 90>;
  using Zw = FB<DType::bf16, D, generated::mask::window, 64, 64, 12, 2, 90>;
  using ZFc = FB<DType::f16, D, generated::mask::causal, 64, 64, 12, 2, 90>;
  using Mn = FB<DType::bf16, D, generated::mask::none, 64, 64, 8, 2>;
  using Mc = FB<DType::bf16, D, generated::mask::causal, 64, 64, 8, 2>;
  const std::string d = "hd" + std::to_string(D);
  bool all = true;
  if (!do_time) {
    all &= run_case<Zn>(Case{1, 64, 128, 1, 1}, (d + " none, two key tiles into one dQ tile").c_str());
    for (auto [sq, sk] : pairs) {
      all &= run_case<Zn>(Case{2, sq, sk, 4, 2}, (d + " none").c_str());
      all &= run_case<Zc>(Case{2, sq, sk, 4, 4}, (d + " causal").c_str());
    }
    all &= run_case<Zn>(Case{1, 300, 300, 8, 1}, (d + " none MQA").c_str());
    all &= run_case<Zc>(varlen_case(), (d + " causal varlen").c_str());
    all &= run_case<Zn>(varlen_case(), (d + " none varlen").c_str());
    all &= run_case<ZFc>(Case{2, 500, 700, 4, 4}, (d + " f16 causal").c_str());
    all &= run_case<Zw>(window_nan_case(), (d + " window, NaN in unseen keys").c_str());
    all &= run_case<Zc>(deterministic_case(), (d + " det causal").c_str(), 20);
  } else {
    for (int S : {512, 1024, 2048, 4096, 8192, 16384}) {
      if (std::getenv("DEV_S") && !listed("DEV_S", S)) continue;
      time_case<Mn>(S, false, (d + "_none_m64n64w8 mma").c_str());
      time_case<Mc>(S, true, (d + "_causal_m64n64w8 mma").c_str());
      time_case<Zn>(S, false, (d + "_none_m64n64w12_sm90a ws").c_str());
      time_case<Zc>(S, true, (d + "_causal_m64n64w12_sm90a ws").c_str());
    }
  }
  return all;
}
template <int... Ds>
static bool split_group(const std::vector<std::pair<int, int>>& pairs, bool do_time) {
  return (split_group_one<Ds>(pairs, do_time) & ...);
}
#endif

int main(int argc, char** argv) {
  const bool do_time = argc > 1 && std::string(argv[1]) == "time";
  setvbuf(stdout, nullptr, _IOLBF, 0);
  bool all = true;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::vector<std::pair<int, int>> pairs = {{1, 1},     {239, 1},    {799, 3},   {113, 203},
                                            {128, 217}, {1023, 1024}, {1024, 1023}};
#define RUN(V, ...) all &= run_case<V>(__VA_ARGS__, #V)
// MQA, varlen with empty sequences (none and causal), f16: beside the boundary pairs of a Hopper tile.
#define RUN_EXTRAS(VN, VC, VF)           \
  RUN(VN, Case{1, 300, 300, 8, 1});      \
  RUN(VC, varlen_case());                \
  RUN(VN, varlen_case());                \
  RUN(VF, Case{2, 500, 700, 4, 4})
#if GROUP == 0  // ci variants + boundary pairs, GQA, varlen, determinism
  if (!do_time) {
    for (auto [sq, sk] : pairs) {
      RUN(bf16_hd64_none_m64n64w4s2, Case{2, sq, sk, 4, 4});
      RUN(bf16_hd64_causal_m64n64w4s2, Case{2, sq, sk, 4, 2});
    }
    RUN(bf16_hd64_causal_m64n64w4s2, Case{1, 300, 300, 8, 1});  // MQA
    RUN(bf16_hd64_causal_m64n64w4s2, varlen_case());
    RUN(bf16_hd64_none_m64n64w4s2, varlen_case());
    {
      Case c{2, 517, 700, 4, 2};
      c.deterministic = true;
      all &= run_case<bf16_hd64_causal_m64n64w4s2>(c, "det causal", 100);
      all &= run_case<bf16_hd64_none_m64n64w4s2>(c, "det none", 100);
    }
  }
#elif GROUP == 1  // other masks
  {
    Case c{2, 333, 411, 4, 2};
    c.window_left = 50;
    c.window_right = 7;
    RUN(bf16_hd64_window_m64n64w4s2, c);
    RUN(bf16_hd128_window_m64n128w8s2, c);
    Case c2 = c;
    c2.window_left = -1;
    c2.window_right = 0;
    RUN(bf16_hd64_window_m64n64w4s2, c2);
    Case cn = c;  // keys 0..27 are outside every window: NaN there changes nothing
    cn.nan_invisible_keys = true;
    RUN(bf16_hd64_window_m64n64w4s2, cn);
    RUN(bf16_hd128_window_m64n128w8s2, cn);
    Case cb{2, 200, 150, 4, 2};
    cb.bias_kind = 1;
    cb.fully_masked_rows = true;
    RUN(bf16_hd64_bias_m64n64w4s2, cb);
    cb.bias_kind = 2;
    RUN(bf16_hd64_bias_m64n64w4s2, cb);
  }
#elif GROUP == 2  // head dims / tiles / f16 (hd128 is the perf variant)
  if (!do_time) {
    for (auto [sq, sk] : pairs) RUN(bf16_hd128_causal_m64n128w8s2, Case{2, sq, sk, 4, 2});
    RUN(bf16_hd128_none_m64n128w8s2, Case{2, 500, 700, 4, 4});
    RUN(f16_hd128_causal_m64n64w4s2, Case{2, 500, 700, 4, 4});
    RUN(bf16_hd64_none_m64n128w8s2, Case{2, 500, 700, 4, 4});
    RUN(bf16_hd32_causal_m64n128w8s2, Case{2, 500, 700, 4, 4});
    RUN(bf16_hd96_causal_m64n64w4s2, Case{2, 500, 700, 4, 4});
    RUN(bf16_hd192_causal_m64n64w8s2, Case{2, 300, 400, 2, 2});
    RUN(bf16_hd256_causal_m64n64w8s2, Case{2, 300, 400, 2, 2});
    RUN(bf16_hd256_none_m64n32w4s2, Case{2, 300, 400, 2, 1});
  } else if (argc > 2 && std::string(argv[2]) == "prof") {  // one shape, for the profiler
    time_case<bf16_hd128_none_m64n128w8s2>(4096, false, "hd128_none_m64n128w8s2");
  } else if (argc > 2 && std::string(argv[2]) == "quick") {  // one shape per variant
    time_case<bf16_hd64_none_m64n128w8s2>(4096, false, "hd64_none_m64n128w8s2");
    time_case<bf16_hd64_none_m64n64w4s2>(4096, false, "hd64_none_m64n64w4s2");
    time_case<bf16_hd128_none_m64n128w8s2>(4096, false, "hd128_none_m64n128w8s2");
    time_case<bf16_hd128_causal_m64n128w8s2>(4096, true, "hd128_causal_m64n128w8s2");
    time_case<bf16_hd128_none_m64n64w4s2>(4096, false, "hd128_none_m64n64w4s2");
  } else {
    for (int S : {512, 1024, 2048, 4096, 8192, 16384}) {
      time_case<bf16_hd64_none_m64n128w8s2>(S, false, "hd64_none_m64n128w8s2");
      time_case<bf16_hd64_causal_m64n128w8s2>(S, true, "hd64_causal_m64n128w8s2");
      time_case<bf16_hd64_none_m64n64w4s2>(S, false, "hd64_none_m64n64w4s2");
      time_case<bf16_hd128_none_m64n128w8s2>(S, false, "hd128_none_m64n128w8s2");
      time_case<bf16_hd128_causal_m64n128w8s2>(S, true, "hd128_causal_m64n128w8s2");
      time_case<bf16_hd128_none_m64n64w4s2>(S, false, "hd128_none_m64n64w4s2");
    }
  }
#elif GROUP == 3  // tile candidates not in default.toml: checked once, then timed at S = 4096
#define TILE(D, BM, BN, W, S)                                                                     \
  {                                                                                              \
    using Vn = FB<DType::bf16, D, generated::mask::none, BM, BN, W, S>;                         \
    using Vc = FB<DType::bf16, D, generated::mask::causal, BM, BN, W, S>;                       \
    const char* nm = "hd" #D "_m" #BM "n" #BN "w" #W "s" #S;                                     \
    if (!do_time) {                                                                              \
      all &= run_case<Vn>(Case{2, 500, 700, 4, 2}, nm);                                          \
      all &= run_case<Vc>(Case{2, 1023, 1024, 4, 4}, nm);                                        \
    } else {                                                                                     \
      time_case<Vn>(4096, false, nm);                                                            \
      time_case<Vc>(4096, true, nm);                                                             \
    }                                                                                            \
  }
  TILE(64, 128, 128, 8, 2)
  TILE(64, 128, 64, 8, 2)
  TILE(64, 64, 128, 4, 2)
  TILE(64, 64, 64, 4, 1)
  TILE(128, 64, 128, 8, 1)
  TILE(128, 128, 64, 8, 1)
  TILE(128, 64, 64, 4, 1)
  TILE(128, 64, 128, 4, 1)
#elif GROUP == 4  // the Hopper kernel (flash/bwd_sm90.cuh; run_bwd takes it on sm_90), then the mma.sync one
  using P128n = FB<DType::bf16, 128, generated::mask::none, 64, 128, 8, 2>;
  using P128c = FB<DType::bf16, 128, generated::mask::causal, 64, 128, 8, 2>;
  using P64n = FB<DType::bf16, 64, generated::mask::none, 64, 128, 8, 2>;
  using P64c = FB<DType::bf16, 64, generated::mask::causal, 64, 128, 8, 2>;
  using P64n1 = FB<DType::bf16, 64, generated::mask::none, 64, 64, 4, 2>;   // one warpgroup, 2 CTAs/SM
  using P64c1 = FB<DType::bf16, 64, generated::mask::causal, 64, 64, 4, 2>;
  using P64n1s1 = FB<DType::bf16, 64, generated::mask::none, 64, 64, 4, 1>;  // one dQ buffer, 3 CTAs/SM
  using P64c1s1 = FB<DType::bf16, 64, generated::mask::causal, 64, 64, 4, 1>;
  using P128w = FB<DType::bf16, 128, generated::mask::window, 64, 128, 8, 2>;
  using P64w1 = FB<DType::bf16, 64, generated::mask::window, 64, 64, 4, 2>;
  using F128c = FB<DType::f16, 128, generated::mask::causal, 64, 128, 8, 2>;
  // sm90a tiles: the warp-specialized form (TMA producer warpgroup) on the wgmma path; the 8-warp tile on mma
  using W128n = FB<DType::bf16, 128, generated::mask::none, 64, 128, 12, 2, 90>;
  using W128c = FB<DType::bf16, 128, generated::mask::causal, 64, 128, 12, 2, 90>;
  using W64n = FB<DType::bf16, 64, generated::mask::none, 64, 128, 12, 2, 90>;
  using W64c = FB<DType::bf16, 64, generated::mask::causal, 64, 128, 12, 2, 90>;
  using X64n = FB<DType::bf16, 64, generated::mask::none, 128, 128, 12, 2, 90>;  // 128-query steps
  using X64c = FB<DType::bf16, 64, generated::mask::causal, 128, 128, 12, 2, 90>;
  using X64w = FB<DType::bf16, 64, generated::mask::window, 128, 128, 12, 2, 90>;
  using XF64c = FB<DType::f16, 64, generated::mask::causal, 128, 128, 12, 2, 90>;
  using W128w = FB<DType::bf16, 128, generated::mask::window, 64, 128, 12, 2, 90>;
  using WF128c = FB<DType::f16, 128, generated::mask::causal, 64, 128, 12, 2, 90>;
  if (do_time && argc > 2 && std::string(argv[2]) == "profws") {  // the warp-specialized tile at D 128
    time_case<W128c>(4096, true, "ws_hd128_causal_m64n128w12_sm90a");
    time_case<W128n>(4096, false, "ws_hd128_none_m64n128w12_sm90a");
    return 0;
  }
  if (do_time && argc > 2 && std::string(argv[2]) == "prof") {  // two launches, for the profiler
    time_case<P64c1s1>(4096, true, "wgmma_hd64_causal_m64n64w4s1");
    time_case<P64n1s1>(4096, false, "wgmma_hd64_none_m64n64w4s1");
    return 0;
  }
  for (const char* path : {"wgmma", "mma"}) {
    if (do_time && std::getenv("DEV_WGMMA_ONLY") && std::strcmp(path, "mma") == 0) continue;
    setenv("ATTNFORGE_FLASH_BWD_PATH", path, 1);
    printf("-- path %s\n", path);
    if (!do_time) {
      RUN(P128n, Case{1, 64, 128, 1, 1});  // one tile each way
      RUN(P64n, Case{1, 64, 128, 1, 1});
      RUN(P64n1, Case{1, 64, 64, 1, 1});
      RUN(P128n, Case{1, 64, 256, 1, 1});  // two CTAs add into one dQ tile
      RUN(W128n, Case{1, 64, 256, 1, 1});
      for (auto [sq, sk] : pairs) {
        RUN(P128n, Case{2, sq, sk, 4, 2});
        RUN(P128c, Case{2, sq, sk, 4, 2});
        RUN(P64c, Case{2, sq, sk, 4, 4});
        RUN(P64c1, Case{2, sq, sk, 4, 2});
        RUN(P64c1s1, Case{2, sq, sk, 4, 2});
        RUN(W128n, Case{2, sq, sk, 4, 2});
        RUN(W128c, Case{2, sq, sk, 4, 2});
        RUN(W64c, Case{2, sq, sk, 4, 4});
        RUN(X64c, Case{2, sq, sk, 4, 4});
        RUN(X64n, Case{2, sq, sk, 4, 2});
      }
      RUN_EXTRAS(X64n, X64c, XF64c);
      RUN(W64n, Case{1, 300, 300, 8, 1});  // MQA
      RUN(W128c, varlen_case());
      RUN(W64n, varlen_case());
      RUN(WF128c, Case{2, 500, 700, 4, 4});
      RUN(P64n, Case{1, 300, 300, 8, 1});  // MQA
      RUN(P64n1, Case{1, 300, 300, 8, 1});
      RUN(P64n1s1, varlen_case());
      RUN(F128c, Case{2, 500, 700, 4, 4});
      RUN(P128c, varlen_case());
      RUN(P64n, varlen_case());
      RUN(P64c1, varlen_case());
      {
        const Case c = window_nan_case();
        RUN(P128w, c);
        RUN(P64w1, c);
        RUN(W128w, c);
        RUN(X64w, c);
      }
      all &= run_case<P128c>(deterministic_case(), "det causal", 20);
    } else {
      const bool w = std::strcmp(path, "wgmma") == 0;
      for (int S : {512, 1024, 2048, 4096, 8192, 16384}) {
        if (!std::getenv("DEV_S") ? (S == 512 || S == 2048 || S == 8192) : !listed("DEV_S", S)) continue;
        if (std::getenv("DEV_CAUSAL_ONLY")) {
          time_case<P64c1s1>(S, true, w ? "wgmma_hd64_causal_m64n64w4s1" : "mma_hd64_causal_m64n64w4s1");
          time_case<P64c>(S, true, w ? "wgmma_hd64_causal_m64n128w8" : "mma_hd64_causal_m64n128w8");
          time_case<P128c>(S, true, w ? "wgmma_hd128_causal_m64n128w8" : "mma_hd128_causal_m64n128w8");
          continue;
        }
        time_case<P64n>(S, false, w ? "wgmma_hd64_none_m64n128w8" : "mma_hd64_none_m64n128w8");
        time_case<P64c>(S, true, w ? "wgmma_hd64_causal_m64n128w8" : "mma_hd64_causal_m64n128w8");
        time_case<P64n1>(S, false, w ? "wgmma_hd64_none_m64n64w4" : "mma_hd64_none_m64n64w4");
        time_case<P64c1>(S, true, w ? "wgmma_hd64_causal_m64n64w4" : "mma_hd64_causal_m64n64w4");
        time_case<P64n1s1>(S, false, w ? "wgmma_hd64_none_m64n64w4s1" : "mma_hd64_none_m64n64w4s1");
        time_case<P64c1s1>(S, true, w ? "wgmma_hd64_causal_m64n64w4s1" : "mma_hd64_causal_m64n64w4s1");
        time_case<P128n>(S, false, w ? "wgmma_hd128_none_m64n128w8" : "mma_hd128_none_m64n128w8");
        time_case<P128c>(S, true, w ? "wgmma_hd128_causal_m64n128w8" : "mma_hd128_causal_m64n128w8");
        if (w) {
          time_case<W64n>(S, false, "ws_hd64_none_m64n128w12_sm90a");
          time_case<W64c>(S, true, "ws_hd64_causal_m64n128w12_sm90a");
          time_case<X64n>(S, false, "ws_hd64_none_m128n128w12_sm90a");
          time_case<X64c>(S, true, "ws_hd64_causal_m128n128w12_sm90a");
          time_case<W128n>(S, false, "ws_hd128_none_m64n128w12_sm90a");
          time_case<W128c>(S, true, "ws_hd128_causal_m64n128w12_sm90a");
        }
      }
    }
  }
  unsetenv("ATTNFORGE_FLASH_BWD_PATH");
#elif GROUP == 5  // head dims 192, 256 on Hopper: the split step (sm90a m64n64w12) against the mma.sync tile it falls back to
#ifndef SPLIT_DS
#define SPLIT_DS 192, 256
#endif
  all &= split_group<SPLIT_DS>(pairs, do_time);
#endif
  printf("GROUP %d %s\n", GROUP, all ? "ALL PASS" : "SOME FAILED");
  return all ? 0 : 1;
}
