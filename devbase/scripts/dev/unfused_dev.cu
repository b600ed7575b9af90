// Standalone development driver of the unfused backend (scripts/dev, outside the library): hand-written masks and
// variants, a CPU fp64 reference and a PyTorch-style low-precision emulation, the numerics rule,
// and a timing mode. nvcc -std=c++17 -O2 -arch=sm_90a -Iruntime/include -Iruntime/kernels -lcublas
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "unfused/bwd.cuh"
#include "unfused/fwd.cuh"

using namespace attnforge;

namespace mask {
struct none {
  static constexpr int kId = 0;
  static constexpr const char* kName = "none";
  static constexpr int kNumScalars = 0;
  static constexpr bool kHasTensor = false;
  ATTNFORGE_HD static bool visible(int, int, int, int, const MaskScalars&) { return true; }
};
struct causal {
  static constexpr int kId = 1;
  static constexpr const char* kName = "causal";
  static constexpr int kNumScalars = 0;
  static constexpr bool kHasTensor = false;
  ATTNFORGE_HD static bool visible(int q, int k, int sq, int sk, const MaskScalars&) {
    return k <= q + sk - sq;
  }
};
struct window {
  static constexpr int kId = 2;
  static constexpr const char* kName = "window";
  static constexpr int kNumScalars = 2;
  static constexpr bool kHasTensor = false;
  ATTNFORGE_HD static bool visible(int q_idx, int k_idx, int seqlen_q, int seqlen_k,
                                   const MaskScalars& s) {
    const int left = s.v[0], right = s.v[1];
    return (left < 0 || k_idx >= q_idx + seqlen_k - seqlen_q - left) &&
           (right < 0 || k_idx <= q_idx + seqlen_k - seqlen_q + right);
  }
};
struct bias {
  static constexpr int kId = 3;
  static constexpr const char* kName = "bias";
  static constexpr int kNumScalars = 0;
  static constexpr bool kHasTensor = true;
  ATTNFORGE_HD static bool visible(int, int, int, int, const MaskScalars&) { return true; }
};
}  // namespace mask

template <DType T, class M, Direction D>
using UV = Variant<Backend::unfused, D, T, 0, M, Tile<0, 0, 4, 0>>;

#define CK(x)                                                                  \
  do {                                                                         \
    cudaError_t e = (x);                                                       \
    if (e != cudaSuccess) {                                                    \
      printf("CUDA %s at %s:%d: %s\n", #x, __FILE__, __LINE__, cudaGetErrorString(e)); \
      exit(2);                                                                 \
    }                                                                          \
  } while (0)

// ---- dtype helpers on the host ----------------------------------------------------------------
static double round_to(DType t, double x) {
  if (t == DType::f32) return double(float(x));
  if (t == DType::f16) return double(__half2float(__float2half_rn(float(x))));
  return double(__bfloat162float(__float2bfloat16_rn(float(x))));
}
static size_t esz(DType t) { return t == DType::f32 ? 4 : 2; }
static void put(DType t, void* base, int64_t i, double x) {
  if (t == DType::f32) static_cast<float*>(base)[i] = float(x);
  else if (t == DType::f16) static_cast<__half*>(base)[i] = __float2half_rn(float(x));
  else static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(float(x));
}
static double get(DType t, const void* base, int64_t i) {
  if (t == DType::f32) return static_cast<const float*>(base)[i];
  if (t == DType::f16) return __half2float(static_cast<const __half*>(base)[i]);
  return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
}
static const char* dname(DType t) { return t == DType::f32 ? "f32" : t == DType::f16 ? "f16" : "bf16"; }

// ---- a case ----------------------------------------------------------------------------------
struct Case {
  DType dt = DType::bf16;
  int mask = 0;  // 0 none 1 causal 2 window 3 bias
  int B = 1, Sq = 1, Sk = 1, Hq = 1, Hkv = 1, D = 64;
  int left = -1, right = -1;
  int bias_dtype = ATTNFORGE_F32;
  bool bias_bcast_b = false, bias_bcast_h = false;
  std::vector<int> lens_q, lens_k;  // varlen when non-empty
  bool weights = false;
  bool bhsd = false;  // dense tensors laid out (B, H, S, D) (strided view), else (B, S, H, D)
  bool bwd = true;
  std::string label() const {
    char buf[256];
    snprintf(buf, sizeof buf, "%s m%d B%d Sq%d Sk%d H%d/%d D%d%s%s%s", dname(dt), mask, B, Sq, Sk, Hq,
             Hkv, D, lens_q.empty() ? "" : " varlen", weights ? " weights" : "", bhsd ? " bhsd" : "");
    return buf;
  }
};

struct Seq {
  int64_t q0, k0;
  int sq, sk;
};

// Logical tensors are packed (tokens, H, D) doubles; token = q0 + i.
struct Ref {
  std::vector<double> O, lse, P, dQ, dK, dV;
};

// PyTorch-style attention with rounding `r` at the points a low-precision implementation rounds
// (identity for the fp64 reference).
static void attention_cpu(const Case& c, const std::vector<Seq>& seqs, const std::vector<double>& Q,
                          const std::vector<double>& K, const std::vector<double>& V,
                          const std::vector<double>& dO, const std::vector<double>& bias,
                          const std::function<double(double)>& r, Ref& out, int64_t tq, int64_t tk) {
  const int D = c.D, Hq = c.Hq, Hkv = c.Hkv, G = Hq / Hkv;
  const double scale = 1.0 / std::sqrt(double(D));
  out.O.assign(tq * Hq * D, 0.0);
  out.lse.assign(int64_t(c.B) * Hq * c.Sq, -INFINITY);
  out.P.assign(int64_t(c.B) * Hq * c.Sq * c.Sk, 0.0);
  out.dQ.assign(tq * Hq * D, 0.0);
  out.dK.assign(tk * Hkv * D, 0.0);
  out.dV.assign(tk * Hkv * D, 0.0);
  MaskScalars ms{{c.left, c.right, 0, 0}};
  for (int b = 0; b < c.B; ++b) {
    const Seq& s = seqs[b];
    for (int h = 0; h < Hq; ++h) {
      const int g = h / G;
      std::vector<double> P(int64_t(s.sq) * s.sk, 0.0), dP(int64_t(s.sq) * s.sk, 0.0);
      for (int i = 0; i < s.sq; ++i) {
        std::vector<double> x(s.sk, -INFINITY);
        double m = -INFINITY;
        for (int k = 0; k < s.sk; ++k) {
          bool vis = true;
          if (c.mask == 1) vis = mask::causal::visible(i, k, s.sq, s.sk, ms);
          if (c.mask == 2) vis = mask::window::visible(i, k, s.sq, s.sk, ms);
          if (!vis) continue;
          double dot = 0;
          for (int d = 0; d < D; ++d)
            dot += Q[((s.q0 + i) * Hq + h) * D + d] * K[((s.k0 + k) * Hkv + g) * D + d];
          double v = r(r(dot) * scale);
          if (c.mask == 3) {
            const int64_t bi = ((int64_t(c.bias_bcast_b ? 0 : b) * (c.bias_bcast_h ? 1 : Hq) +
                                 (c.bias_bcast_h ? 0 : h)) * c.Sq + i) * c.Sk + k;
            if (c.bias_dtype == ATTNFORGE_BOOL) {
              if (bias[bi] == 0) continue;
            } else {
              v = r(v + bias[bi]);
            }
          }
          x[k] = v;
          m = std::max(m, v);
        }
        if (m == -INFINITY) continue;  // fully masked row: P = 0, O = 0, LSE = −∞
        double l = 0;
        for (int k = 0; k < s.sk; ++k) l += std::exp(x[k] - m);
        out.lse[(int64_t(b) * Hq + h) * c.Sq + i] = m + std::log(l);
        for (int k = 0; k < s.sk; ++k) {
          P[int64_t(i) * s.sk + k] = r(std::exp(x[k] - m) / l);
          out.P[((int64_t(b) * Hq + h) * c.Sq + i) * c.Sk + k] = P[int64_t(i) * s.sk + k];
        }
        for (int d = 0; d < D; ++d) {
          double o = 0;
          for (int k = 0; k < s.sk; ++k) o += P[int64_t(i) * s.sk + k] * V[((s.k0 + k) * Hkv + g) * D + d];
          out.O[((s.q0 + i) * Hq + h) * D + d] = r(o);
        }
      }
      if (!c.bwd) continue;
      // dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dP ∘ P)), dQ = dS·K·scale, dK = dSᵀ·Q·scale, dV = Pᵀ·dO
      for (int i = 0; i < s.sq; ++i) {
        double rs = 0;
        for (int k = 0; k < s.sk; ++k) {
          double v = 0;
          for (int d = 0; d < D; ++d)
            v += dO[((s.q0 + i) * Hq + h) * D + d] * V[((s.k0 + k) * Hkv + g) * D + d];
          dP[int64_t(i) * s.sk + k] = r(v);
          rs += dP[int64_t(i) * s.sk + k] * P[int64_t(i) * s.sk + k];
        }
        for (int k = 0; k < s.sk; ++k) {
          const double p = P[int64_t(i) * s.sk + k];
          dP[int64_t(i) * s.sk + k] = r(r(p * (dP[int64_t(i) * s.sk + k] - rs)) * scale);  // dS
        }
      }
      for (int i = 0; i < s.sq; ++i)
        for (int d = 0; d < D; ++d) {
          double v = 0;
          for (int k = 0; k < s.sk; ++k) v += dP[int64_t(i) * s.sk + k] * K[((s.k0 + k) * Hkv + g) * D + d];
          out.dQ[((s.q0 + i) * Hq + h) * D + d] = r(v);
        }
      for (int k = 0; k < s.sk; ++k)
        for (int d = 0; d < D; ++d) {
          double vk = 0, vv = 0;
          for (int i = 0; i < s.sq; ++i) {
            vk += dP[int64_t(i) * s.sk + k] * Q[((s.q0 + i) * Hq + h) * D + d];
            vv += P[int64_t(i) * s.sk + k] * dO[((s.q0 + i) * Hq + h) * D + d];
          }
          // summed over the group in fp64, rounded per head like a lowp implementation would
          out.dK[((s.k0 + k) * Hkv + g) * D + d] += r(vk);
          out.dV[((s.k0 + k) * Hkv + g) * D + d] += r(vv);
        }
    }
  }
  for (auto& x : out.dK) x = r(x);  // the group sum is stored in the dtype too
  for (auto& x : out.dV) x = r(x);
}

// A device tensor of logical (tokens, H, D) with its strides.
struct DevT {
  void* d = nullptr;
  size_t bytes = 0;
  int64_t bs = 0, rs = 0, hs = 0;
};

static DevT make_dev(const Case& c, DType t, int64_t tokens, int H, int S) {
  DevT x;
  const bool varlen = !c.lens_q.empty();
  if (!varlen && c.bhsd) {
    x.hs = int64_t(S) * c.D;
    x.rs = c.D;
    x.bs = int64_t(H) * S * c.D;
  } else {
    x.rs = int64_t(H) * c.D;
    x.hs = c.D;
    x.bs = varlen ? 0 : int64_t(S) * H * c.D;
  }
  x.bytes = size_t(tokens) * H * c.D * esz(t);
  CK(cudaMalloc(&x.d, x.bytes + 16));
  return x;
}
static int64_t dev_index(const DevT& x, const Case& c, const std::vector<Seq>& seqs, int64_t token,
                         int h, int d, int S) {
  if (!c.lens_q.empty()) return token * x.rs + h * x.hs + d;
  const int b = int(token / S), i = int(token % S);
  return b * x.bs + i * x.rs + h * x.hs + d;
}
static void upload(const DevT& x, DType t, const Case& c, const std::vector<Seq>& seqs,
                   const std::vector<double>& v, int H, int S) {
  std::vector<char> host(x.bytes);
  const int64_t tokens = int64_t(v.size()) / (int64_t(H) * c.D);
  for (int64_t tok = 0; tok < tokens; ++tok)
    for (int h = 0; h < H; ++h)
      for (int d = 0; d < c.D; ++d) put(t, host.data(), dev_index(x, c, seqs, tok, h, d, S), v[(tok * H + h) * c.D + d]);
  CK(cudaMemcpy(x.d, host.data(), x.bytes, cudaMemcpyHostToDevice));
}
static std::vector<double> download(const DevT& x, DType t, const Case& c, const std::vector<Seq>& seqs,
                                    int64_t tokens, int H, int S) {
  std::vector<char> host(x.bytes);
  CK(cudaMemcpy(host.data(), x.d, x.bytes, cudaMemcpyDeviceToHost));
  std::vector<double> v(tokens * H * c.D);
  for (int64_t tok = 0; tok < tokens; ++tok)
    for (int h = 0; h < H; ++h)
      for (int d = 0; d < c.D; ++d) v[(tok * H + h) * c.D + d] = get(t, host.data(), dev_index(x, c, seqs, tok, h, d, S));
  return v;
}

static double max_err(const std::vector<double>& a, const std::vector<double>& b, bool* nan = nullptr) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i])) {
      if (nan) *nan = true;
      return INFINITY;
    }
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      if (a[i] != b[i]) return INFINITY;
      continue;
    }
    m = std::max(m, std::abs(a[i] - b[i]));
  }
  return m;
}

template <DType T, class M>
static attnforge_status launch(const Params& p, bool bwd, cudaStream_t s) {
  if (bwd) return unfused::run_bwd<UV<T, M, Direction::bwd>>(p, s);
  return unfused::run_fwd<UV<T, M, Direction::fwd>>(p, s);
}
template <DType T>
static attnforge_status launch_m(int m, const Params& p, bool bwd, cudaStream_t s) {
  switch (m) {
    case 0: return launch<T, mask::none>(p, bwd, s);
    case 1: return launch<T, mask::causal>(p, bwd, s);
    case 2: return launch<T, mask::window>(p, bwd, s);
    default: return launch<T, mask::bias>(p, bwd, s);
  }
}
static attnforge_status launch_any(DType t, int m, const Params& p, bool bwd, cudaStream_t s) {
  if (t == DType::f32) return launch_m<DType::f32>(m, p, bwd, s);
  if (t == DType::f16) return launch_m<DType::f16>(m, p, bwd, s);
  return launch_m<DType::bf16>(m, p, bwd, s);
}

static cublasHandle_t g_handle;
static int g_fail = 0, g_pass = 0;

static bool check(const char* what, const Case& c, const std::vector<double>& out,
                  const std::vector<double>& ref, const std::vector<double>& lowp, double factor) {
  bool nan = false;
  const double e = max_err(out, ref, &nan), el = max_err(lowp, ref);
  const bool ok = !nan && e <= factor * el + 1e-5;
  printf("  %-3s %-6s err %.3e  lowp %.3e  %s\n", ok ? "ok" : "BAD", what, e, el, nan ? "NaN!" : "");
  if (!ok) ++g_fail; else ++g_pass;
  return ok;
}

static void run_case(const Case& c, std::mt19937& rng) {
  printf("case %s\n", c.label().c_str());
  const bool varlen = !c.lens_q.empty();
  std::vector<Seq> seqs;
  int64_t tq = 0, tk = 0;
  for (int b = 0; b < c.B; ++b) {
    const int sq = varlen ? c.lens_q[b] : c.Sq, sk = varlen ? c.lens_k[b] : c.Sk;
    seqs.push_back({tq, tk, sq, sk});
    tq += sq;
    tk += sk;
  }
  std::normal_distribution<double> nd(0.0, 1.0);
  auto randn = [&](int64_t n) {
    std::vector<double> v(n);
    for (auto& x : v) x = round_to(c.dt, nd(rng));
    return v;
  };
  const int D = c.D;
  auto Q = randn(tq * c.Hq * D), K = randn(tk * c.Hkv * D), V = randn(tk * c.Hkv * D),
       dO = randn(tq * c.Hq * D);
  std::vector<double> bias;
  const int Bb = c.bias_bcast_b ? 1 : c.B, Hb = c.bias_bcast_h ? 1 : c.Hq;
  if (c.mask == 3) {
    bias.resize(int64_t(Bb) * Hb * c.Sq * c.Sk);
    std::uniform_real_distribution<double> u(0, 1);
    for (size_t i = 0; i < bias.size(); ++i) {
      if (c.bias_dtype == ATTNFORGE_BOOL) bias[i] = u(rng) < 0.7 ? 1 : 0;
      else {
        const DType bt = c.bias_dtype == ATTNFORGE_F32 ? DType::f32 : DType(c.bias_dtype);
        bias[i] = u(rng) < 0.1 ? -INFINITY : round_to(bt, nd(rng));
      }
    }
    // one fully hidden row: (b 0, h 0, i 0)
    for (int k = 0; k < c.Sk; ++k) bias[k] = c.bias_dtype == ATTNFORGE_BOOL ? 0 : -INFINITY;
  }
  Ref ref, lowp;
  attention_cpu(c, seqs, Q, K, V, dO, bias, [](double x) { return x; }, ref, tq, tk);
  attention_cpu(c, seqs, Q, K, V, dO, bias, [&](double x) { return round_to(c.dt, x); }, lowp, tq, tk);
  // lowp forward O feeds its own backward; the device backward consumes the device forward's O.

  DevT q = make_dev(c, c.dt, tq, c.Hq, c.Sq), k = make_dev(c, c.dt, tk, c.Hkv, c.Sk),
       v = make_dev(c, c.dt, tk, c.Hkv, c.Sk), o = make_dev(c, c.dt, tq, c.Hq, c.Sq),
       d_o = make_dev(c, c.dt, tq, c.Hq, c.Sq), dq = make_dev(c, c.dt, tq, c.Hq, c.Sq),
       dk = make_dev(c, c.dt, tk, c.Hkv, c.Sk), dv = make_dev(c, c.dt, tk, c.Hkv, c.Sk);
  upload(q, c.dt, c, seqs, Q, c.Hq, c.Sq);
  upload(k, c.dt, c, seqs, K, c.Hkv, c.Sk);
  upload(v, c.dt, c, seqs, V, c.Hkv, c.Sk);
  upload(d_o, c.dt, c, seqs, dO, c.Hq, c.Sq);
  float* lse;
  const int64_t lse_n = int64_t(c.B) * c.Hq * c.Sq;
  CK(cudaMalloc(&lse, (varlen ? c.Hq * tq : lse_n) * 4 + 16));
  void* weights = nullptr;
  const int64_t wn = int64_t(c.B) * c.Hq * c.Sq * c.Sk;
  if (c.weights) CK(cudaMalloc(&weights, wn * esz(c.dt) + 16));
  void* dbias = nullptr;
  if (c.mask == 3) {
    const size_t be = c.bias_dtype == ATTNFORGE_BOOL ? 1 : c.bias_dtype == ATTNFORGE_F32 ? 4 : 2;
    std::vector<char> hb(bias.size() * be);
    for (size_t i = 0; i < bias.size(); ++i) {
      if (c.bias_dtype == ATTNFORGE_BOOL) hb[i] = char(bias[i] != 0);
      else put(c.bias_dtype == ATTNFORGE_F32 ? DType::f32 : DType(c.bias_dtype), hb.data(), i, bias[i]);
    }
    CK(cudaMalloc(&dbias, hb.size() + 16));
    CK(cudaMemcpy(dbias, hb.data(), hb.size(), cudaMemcpyHostToDevice));
  }
  int32_t* cu = nullptr;
  if (varlen) {
    std::vector<int32_t> h(2 * (c.B + 1));
    for (int b = 0; b <= c.B; ++b) {
      h[b] = b < c.B ? int32_t(seqs[b].q0) : int32_t(tq);
      h[c.B + 1 + b] = b < c.B ? int32_t(seqs[b].k0) : int32_t(tk);
    }
    CK(cudaMalloc(&cu, h.size() * 4));
    CK(cudaMemcpy(cu, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
  }

  Params p{};
  p.q = q.d, p.k = k.d, p.v = v.d, p.o = o.d, p.lse = lse, p.weights = weights;
  p.q_batch_stride = q.bs, p.q_row_stride = q.rs, p.q_head_stride = q.hs;
  p.k_batch_stride = k.bs, p.k_row_stride = k.rs, p.k_head_stride = k.hs;
  p.v_batch_stride = v.bs, p.v_row_stride = v.rs, p.v_head_stride = v.hs;
  p.o_batch_stride = o.bs, p.o_row_stride = o.rs, p.o_head_stride = o.hs;
  if (varlen) p.lse_batch_stride = 0, p.lse_head_stride = tq;
  else p.lse_batch_stride = int64_t(c.Hq) * c.Sq, p.lse_head_stride = c.Sq;
  p.d_o = d_o.d, p.dq = dq.d, p.dk = dk.d, p.dv = dv.d;
  p.do_batch_stride = d_o.bs, p.do_row_stride = d_o.rs, p.do_head_stride = d_o.hs;
  p.dq_batch_stride = dq.bs, p.dq_row_stride = dq.rs, p.dq_head_stride = dq.hs;
  p.dk_batch_stride = dk.bs, p.dk_row_stride = dk.rs, p.dk_head_stride = dk.hs;
  p.dv_batch_stride = dv.bs, p.dv_row_stride = dv.rs, p.dv_head_stride = dv.hs;
  p.batch = c.B, p.seqlen_q = c.Sq, p.seqlen_k = c.Sk, p.heads_q = c.Hq, p.heads_kv = c.Hkv;
  p.head_dim = D, p.total_q = tq, p.total_k = tk;
  p.cu_seqlens_q = cu, p.cu_seqlens_k = cu ? cu + c.B + 1 : nullptr;
  p.scale = float(1.0 / std::sqrt(double(D)));
  p.scale_log2 = p.scale * 1.4426950408889634f;
  p.mask = MaskScalars{{c.left, c.right, 0, 0}};
  if (dbias) {
    p.bias = dbias, p.bias_dtype = c.bias_dtype;
    p.bias_stride_k = 1, p.bias_stride_q = c.Sk;
    p.bias_stride_h = c.bias_bcast_h ? 0 : int64_t(c.Sq) * c.Sk;
    p.bias_stride_b = c.bias_bcast_b ? 0 : int64_t(Hb) * c.Sq * c.Sk;
  }
  p.cublas_handle = g_handle;
  const auto Lf = unfused::make_layout(c.dt, Direction::fwd, p);
  const auto Lb = unfused::make_layout(c.dt, Direction::bwd, p);
  void* ws = nullptr;
  const size_t wsb = std::max(Lf.total, Lb.total);
  if (wsb) CK(cudaMalloc(&ws, wsb));
  p.workspace = ws, p.workspace_bytes = wsb;

  // poison outputs (0xFF ⇒ NaN), run forward
  CK(cudaMemset(o.d, 0xFF, o.bytes));
  CK(cudaMemset(lse, 0xFF, (varlen ? c.Hq * tq : lse_n) * 4));
  if (weights) CK(cudaMemset(weights, 0xFF, wn * esz(c.dt)));
  if (ws) CK(cudaMemset(ws, 0xFF, wsb));
  attnforge_status st = launch_any(c.dt, c.mask, p, false, 0);
  CK(cudaDeviceSynchronize());
  if (st != ATTNFORGE_OK) {
    printf("  BAD forward status %d: %s\n", st, unfused::last_error().c_str());
    ++g_fail;
    return;
  }
  auto O = download(o, c.dt, c, seqs, tq, c.Hq, c.Sq);
  check("O", c, O, ref.O, lowp.O, 2);
  std::vector<float> lse_h(varlen ? c.Hq * tq : lse_n);
  CK(cudaMemcpy(lse_h.data(), lse, lse_h.size() * 4, cudaMemcpyDeviceToHost));
  std::vector<double> L(lse_n, -INFINITY), Lr(lse_n, -INFINITY), Ll(lse_n, -INFINITY);
  for (int b = 0; b < c.B; ++b)
    for (int h = 0; h < c.Hq; ++h)
      for (int i = 0; i < seqs[b].sq; ++i) {
        const int64_t li = (int64_t(b) * c.Hq + h) * c.Sq + i;
        L[li] = varlen ? lse_h[h * tq + seqs[b].q0 + i] : lse_h[li];
        Lr[li] = ref.lse[li], Ll[li] = lowp.lse[li];
      }
  check("LSE", c, L, Lr, Ll, 2);
  // fully masked rows: O exactly 0, LSE −∞
  int masked_rows = 0, bad_masked = 0;
  for (int b = 0; b < c.B; ++b)
    for (int h = 0; h < c.Hq; ++h)
      for (int i = 0; i < seqs[b].sq; ++i) {
        const int64_t li = (int64_t(b) * c.Hq + h) * c.Sq + i;
        if (Lr[li] != -INFINITY) continue;
        ++masked_rows;
        if (L[li] != -INFINITY) ++bad_masked;
        for (int d = 0; d < D; ++d)
          if (O[((seqs[b].q0 + i) * c.Hq + h) * D + d] != 0.0) ++bad_masked;
      }
  if (masked_rows) {
    printf("  %-3s masked rows %d (O == 0, LSE == -inf)\n", bad_masked ? "BAD" : "ok", masked_rows);
    bad_masked ? ++g_fail : ++g_pass;
  }
  if (weights) {
    std::vector<char> hw(wn * esz(c.dt));
    CK(cudaMemcpy(hw.data(), weights, hw.size(), cudaMemcpyDeviceToHost));
    std::vector<double> Pw(wn);
    for (int64_t i = 0; i < wn; ++i) Pw[i] = get(c.dt, hw.data(), i);
    check("P", c, Pw, ref.P, lowp.P, 2);
  }
  if (c.bwd) {
    CK(cudaMemset(dq.d, 0xFF, dq.bytes));
    CK(cudaMemset(dk.d, 0xFF, dk.bytes));
    CK(cudaMemset(dv.d, 0xFF, dv.bytes));
    if (ws) CK(cudaMemset(ws, 0xFF, wsb));
    st = launch_any(c.dt, c.mask, p, true, 0);
    CK(cudaDeviceSynchronize());
    if (st != ATTNFORGE_OK) {
      printf("  BAD backward status %d: %s\n", st, unfused::last_error().c_str());
      ++g_fail;
    } else {
      check("dQ", c, download(dq, c.dt, c, seqs, tq, c.Hq, c.Sq), ref.dQ, lowp.dQ, 3);
      check("dK", c, download(dk, c.dt, c, seqs, tk, c.Hkv, c.Sk), ref.dK, lowp.dK, 3);
      check("dV", c, download(dv, c.dt, c, seqs, tk, c.Hkv, c.Sk), ref.dV, lowp.dV, 3);
    }
  }
  for (void* ptr : {q.d, k.d, v.d, o.d, d_o.d, dq.d, dk.d, dv.d, (void*)lse, weights, dbias, (void*)cu, ws})
    if (ptr) CK(cudaFree(ptr));
}

// ---- timing: bf16, D = 128, B = 4, H = 16, S = 4096 (DESIGN.md training grid point) -----------
static void bench(int S, int B, int H, int D) {
  Case c;
  c.dt = DType::bf16, c.B = B, c.Sq = c.Sk = S, c.Hq = c.Hkv = H, c.D = D;
  const int64_t n = int64_t(B) * S * H * D;
  void *q, *k, *v, *o, *d_o, *dq, *dk, *dv;
  float* lse;
  for (void** x : {&q, &k, &v, &o, &d_o, &dq, &dk, &dv}) CK(cudaMalloc(x, n * 2));
  CK(cudaMalloc(&lse, int64_t(B) * H * S * 4));
  {
    std::vector<__nv_bfloat16> h(n);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (auto& x : h) x = __float2bfloat16_rn(nd(rng));
    for (void* x : {q, k, v, d_o}) CK(cudaMemcpy(x, h.data(), n * 2, cudaMemcpyHostToDevice));
  }
  Params p{};
  p.q = q, p.k = k, p.v = v, p.o = o, p.lse = lse, p.d_o = d_o, p.dq = dq, p.dk = dk, p.dv = dv;
  const int64_t bs = int64_t(S) * H * D, rs = int64_t(H) * D, hs = D;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = p.do_batch_stride =
      p.dq_batch_stride = p.dk_batch_stride = p.dv_batch_stride = bs;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = p.do_row_stride =
      p.dq_row_stride = p.dk_row_stride = p.dv_row_stride = rs;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = p.do_head_stride =
      p.dq_head_stride = p.dk_head_stride = p.dv_head_stride = hs;
  p.lse_batch_stride = int64_t(H) * S, p.lse_head_stride = S;
  p.batch = B, p.seqlen_q = p.seqlen_k = S, p.heads_q = p.heads_kv = H, p.head_dim = D;
  p.total_q = p.total_k = int64_t(B) * S;
  p.scale = 1.0f / std::sqrt(float(D)), p.scale_log2 = p.scale * 1.4426950408889634f;
  p.cublas_handle = g_handle;
  const size_t wsb = std::max(unfused::make_layout(DType::bf16, Direction::fwd, p).total,
                              unfused::make_layout(DType::bf16, Direction::bwd, p).total);
  void* ws;
  CK(cudaMalloc(&ws, wsb));
  p.workspace = ws, p.workspace_bytes = wsb;
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int causal = 0; causal < 2; ++causal)
    for (int bwd = 0; bwd < 2; ++bwd) {
      auto go = [&] { return launch_any(DType::bf16, causal, p, bwd, 0); };
      for (int i = 0; i < 3; ++i)
        if (go() != ATTNFORGE_OK) printf("bench launch failed: %s\n", unfused::last_error().c_str());
      const int iters = 10;
      CK(cudaEventRecord(e0));
      for (int i = 0; i < iters; ++i) go();
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float ms;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      ms /= iters;
      double flops = 4.0 * B * H * double(S) * S * D * (causal ? 0.5 : 1.0) * (bwd ? 2.5 : 1.0);
      printf("BENCH unfused %s bf16 D=%d S=%d B=%d H=%d causal=%d: %.3f ms  %.1f TFLOP/s  (ws %.2f GB)\n",
             bwd ? "bwd" : "fwd", D, S, B, H, causal, ms, flops / ms / 1e9, wsb / 1e9);
    }
  // the softmax pass alone, fwd non-causal: effective GB/s over S read + P write
  {
    const auto L = unfused::make_layout(DType::bf16, Direction::fwd, p);
    float* Sb = reinterpret_cast<float*>(static_cast<char*>(ws) + L.s);
    auto* P = reinterpret_cast<__nv_bfloat16*>(static_cast<char*>(ws) + L.p);
    CK(cudaMemset(Sb, 0, size_t(L.rows) * L.ld_s * 4));
    using VF = UV<DType::bf16, mask::none, Direction::fwd>;
    for (int i = 0; i < 3; ++i) unfused::softmax_fwd<VF>(p, Sb, L.ld_s, P, L.ld_p, 0);
    CK(cudaEventRecord(e0));
    for (int i = 0; i < 10; ++i) unfused::softmax_fwd<VF>(p, Sb, L.ld_s, P, L.ld_p, 0);
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    ms /= 10;
    const double bytes = double(L.rows) * S * (4 + 2);
    printf("BENCH softmax_fwd alone: %.3f ms  %.0f GB/s (S fp32 read + P bf16 write)\n", ms, bytes / ms / 1e6);
  }
  CK(cudaFree(ws));
  for (void* x : {q, k, v, o, d_o, dq, dk, dv, (void*)lse}) CK(cudaFree(x));
}

int main(int argc, char** argv) {
  const bool do_bench = argc > 1 && !strcmp(argv[1], "--bench");
  if (cublasCreate(&g_handle) != CUBLAS_STATUS_SUCCESS) return 3;
  if (do_bench) {
    bench(4096, 4, 16, 128);
    return 0;
  }
  std::mt19937 rng(12345);
  std::vector<Case> cases;
  auto add = [&](Case c) { cases.push_back(c); };
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    // shapes: Sq/Sk ∈ {1, 3, 113, 203, 1023, 1024}
    for (auto [sq, sk] : std::vector<std::pair<int, int>>{{1, 1}, {3, 3}, {113, 203}, {203, 113}, {1, 1024}, {1023, 1024}}) {
      Case c; c.dt = dt; c.Sq = sq; c.Sk = sk; c.B = 2; c.Hq = 4; c.Hkv = 2; c.D = 64; c.mask = 1;
      if (sq * sk > 500000) { c.B = 1; c.Hq = 2; c.Hkv = 1; }
      add(c);
    }
    for (int m = 0; m < 3; ++m) {
      Case c; c.dt = dt; c.mask = m; c.B = 2; c.Sq = 113; c.Sk = 203; c.Hq = 6; c.Hkv = 2; c.D = 80;
      if (m == 2) { c.left = 17; c.right = 5; }
      add(c);
    }
  }
  for (int hd : {1, 7, 128}) {
    Case c; c.dt = DType::bf16; c.mask = 0; c.B = 2; c.Sq = 37; c.Sk = 61; c.Hq = 3; c.Hkv = 3; c.D = hd; c.weights = true;
    add(c);
  }
  { Case c; c.dt = DType::f16; c.mask = 1; c.B = 1; c.Sq = 64; c.Sk = 96; c.Hq = 2; c.Hkv = 1; c.D = 1024; add(c); }
  { Case c; c.dt = DType::f32; c.mask = 1; c.B = 1; c.Sq = 40; c.Sk = 24; c.Hq = 2; c.Hkv = 2; c.D = 7; c.weights = true; add(c); }  // rows with no key
  { Case c; c.dt = DType::bf16; c.mask = 2; c.B = 2; c.Sq = 50; c.Sk = 50; c.Hq = 4; c.Hkv = 4; c.D = 64; c.left = 3; c.right = 0; c.bhsd = true; add(c); }
  { Case c; c.dt = DType::bf16; c.mask = 2; c.B = 1; c.Sq = 60; c.Sk = 30; c.Hq = 2; c.Hkv = 1; c.D = 32; c.left = 2; c.right = 0; add(c); }  // empty window rows
  for (int bd : {ATTNFORGE_F32, ATTNFORGE_BF16, ATTNFORGE_BOOL}) {
    Case c; c.dt = bd == ATTNFORGE_F32 ? DType::f16 : DType::bf16; c.mask = 3; c.B = 2; c.Sq = 47; c.Sk = 203; c.Hq = 4; c.Hkv = 2; c.D = 64;
    c.bias_dtype = bd; c.bias_bcast_b = bd != ATTNFORGE_BF16; c.bias_bcast_h = bd != ATTNFORGE_F32; c.weights = true;
    add(c);
  }
  for (DType dt : {DType::f32, DType::bf16}) {
    Case c; c.dt = dt; c.mask = 1; c.B = 4; c.Hq = 4; c.Hkv = 2; c.D = 64;
    c.lens_q = {17, 0, 100, 5}; c.lens_k = {30, 12, 100, 0};
    c.Sq = 100; c.Sk = 100; c.weights = dt == DType::f32;
    add(c);
  }
  { Case c; c.dt = DType::bf16; c.mask = 0; c.B = 1; c.Sq = 9; c.Sk = 9000; c.Hq = 2; c.Hkv = 2; c.D = 16; add(c); }  // streaming softmax path
  { Case c; c.dt = DType::bf16; c.mask = 1; c.B = 1; c.Sq = 5; c.Sk = 2000; c.Hq = 2; c.Hkv = 2; c.D = 16; c.weights = true; add(c); }  // block path
  for (auto& c : cases) run_case(c, rng);
  printf("SUMMARY: %d checks passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
