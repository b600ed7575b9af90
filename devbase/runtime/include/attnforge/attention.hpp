// C++ API over the C API (attnforge.h): a Tensor view builder, Options, and forward/backward
// returning a Status that carries the library's message. Header-only; nothing here throws.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "attnforge/attnforge.h"

namespace attnforge {

// A strided view of device memory (sizes and strides in elements). Default: absent.
class Tensor {
 public:
  Tensor() = default;
  // Row-major contiguous view, e.g. Tensor(q_ptr, ATTNFORGE_BF16, {B, Sq, Hq, D}).
  Tensor(void* data, attnforge_dtype dtype, std::initializer_list<int64_t> sizes) {
    t_.data = data;
    t_.dtype = dtype;
    t_.rank = int32_t(sizes.size() <= ATTNFORGE_MAX_RANK ? sizes.size() : ATTNFORGE_MAX_RANK);
    int i = 0;
    for (int64_t s : sizes)
      if (i < ATTNFORGE_MAX_RANK) t_.sizes[i++] = s;
    int64_t stride = 1;
    for (int d = t_.rank - 1; d >= 0; --d) t_.strides[d] = stride, stride *= t_.sizes[d];
  }
  // Explicit strides (in elements), e.g. for a slice of a packed qkv tensor.
  Tensor& strides(std::initializer_list<int64_t> strides) {
    int i = 0;
    for (int64_t s : strides)
      if (i < ATTNFORGE_MAX_RANK) t_.strides[i++] = s;
    return *this;
  }
  const attnforge_tensor& c() const { return t_; }
  bool present() const { return t_.data != nullptr; }

 private:
  attnforge_tensor t_{};
};

// Which keys a query sees. Factory functions for the built-in kinds; custom() for a TOML kind.
struct Mask {
  std::string kind = "none";
  std::array<int64_t, ATTNFORGE_MAX_MASK_SCALARS> scalars{-1, -1, -1, -1};
  Tensor bias;

  static Mask none() { return {}; }
  static Mask causal() { return custom("causal"); }
  static Mask window(int64_t left, int64_t right) { return custom("window", {left, right}); }
  // Additive float (dtype of q or f32) or ATTNFORGE_BOOL tensor, broadcastable to (B, Hq, Sq, Sk).
  static Mask bias_tensor(Tensor t) {
    Mask m = custom("bias");
    m.bias = t;
    return m;
  }
  static Mask custom(std::string kind, std::initializer_list<int64_t> scalars = {}, Tensor tensor = {}) {
    Mask m;
    m.kind = std::move(kind);
    int i = 0;
    for (int64_t s : scalars)
      if (i < ATTNFORGE_MAX_MASK_SCALARS) m.scalars[size_t(i++)] = s;
    m.bias = tensor;
    return m;
  }
};

// Varlen: packed (total, H, D) tensors with device cu_seqlens (int32, batch + 1 entries).
struct Varlen {
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* cu_seqlens_k = nullptr;
  int32_t batch = 0;
  int32_t max_seqlen_q = 0, max_seqlen_k = 0;
};

struct Options {
  Mask mask;
  float scale = 0.0f;  // 0 ⇒ 1/sqrt(D)
  attnforge_backend backend = ATTNFORGE_BACKEND_AUTO;
  std::string variant;  // exact variant name; empty ⇒ choose
  Varlen varlen;
  bool deterministic = false;
  void* workspace = nullptr;  // optional device scratch
  size_t workspace_bytes = 0;
  size_t memory_budget = 0;
  void* stream = nullptr;  // cudaStream_t
};

struct Status {
  attnforge_status code = ATTNFORGE_OK;
  std::string message;  // attnforge_last_error() of the failed call; empty on success
  bool ok() const { return code == ATTNFORGE_OK; }
  explicit operator bool() const { return ok(); }
  const char* name() const { return attnforge_status_string(code); }
};

// What AUTO (or the options) would run, and why.
struct BackendChoice {
  Status status;
  attnforge_backend backend = ATTNFORGE_BACKEND_AUTO;
  std::string variant;
  std::string reason;
};

namespace detail {
inline attnforge_args make_args(const Options& opt) {
  attnforge_args a;
  attnforge_args_init(&a);
  a.mask.kind = opt.mask.kind.c_str();  // valid while opt lives (the call is synchronous on the host)
  for (int i = 0; i < ATTNFORGE_MAX_MASK_SCALARS; ++i) a.mask.scalars[i] = opt.mask.scalars[size_t(i)];
  a.mask.bias = opt.mask.bias.c();
  a.scale = opt.scale;
  a.backend = opt.backend;
  a.variant = opt.variant.empty() ? nullptr : opt.variant.c_str();
  a.cu_seqlens_q = opt.varlen.cu_seqlens_q;
  a.cu_seqlens_k = opt.varlen.cu_seqlens_k;
  a.batch_varlen = opt.varlen.batch;
  a.max_seqlen_q = opt.varlen.max_seqlen_q;
  a.max_seqlen_k = opt.varlen.max_seqlen_k;
  a.deterministic = opt.deterministic ? 1 : 0;
  a.workspace = opt.workspace;
  a.workspace_bytes = opt.workspace_bytes;
  a.memory_budget = opt.memory_budget;
  return a;
}
inline Status status_of(attnforge_status s) {
  return Status{s, s == ATTNFORGE_OK ? std::string() : std::string(attnforge_last_error())};
}
inline BackendChoice choose(const attnforge_args& a, bool backward) {
  BackendChoice c;
  char variant[256] = {}, reason[1024] = {};
  c.status = status_of(
      attnforge_select_backend(&a, backward ? 1 : 0, &c.backend, variant, sizeof variant, reason, sizeof reason));
  c.variant = variant;
  c.reason = reason;
  return c;
}
}  // namespace detail

// O = softmax(Q·Kᵀ·scale + mask)·V. q (B, Sq, Hq, D), k/v (B, Sk, Hkv, D), o like q;
// optional lse fp32 (B, Hq, Sq) and weights P (B, Hq, Sq, Sk).
inline Status forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Options& opt = {},
                      const Tensor& lse = {}, const Tensor& weights = {}) {
  attnforge_args a = detail::make_args(opt);
  a.q = q.c(), a.k = k.c(), a.v = v.c(), a.o = o.c(), a.lse = lse.c(), a.weights = weights.c();
  return detail::status_of(attnforge_forward(&a, opt.stream));
}

// dQ, dK, dV from the forward's q, k, v, o, lse and the output gradient d_o.
inline Status backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                       const Tensor& d_o, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                       const Options& opt = {}) {
  attnforge_args a = detail::make_args(opt);
  a.q = q.c(), a.k = k.c(), a.v = v.c(), a.o = o.c(), a.lse = lse.c();
  a.d_o = d_o.c(), a.dq = dq.c(), a.dk = dk.c(), a.dv = dv.c();
  return detail::status_of(attnforge_backward(&a, opt.stream));
}

// The backend/variant a forward call with these tensors would run, and why.
inline BackendChoice choose_backend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                                    const Options& opt = {}, const Tensor& weights = {}) {
  attnforge_args a = detail::make_args(opt);
  a.q = q.c(), a.k = k.c(), a.v = v.c(), a.o = o.c(), a.weights = weights.c();
  return detail::choose(a, false);
}

// The same for a backward call.
inline BackendChoice choose_backend_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                                             const Tensor& lse, const Tensor& d_o, const Tensor& dq,
                                             const Tensor& dk, const Tensor& dv, const Options& opt = {}) {
  attnforge_args a = detail::make_args(opt);
  a.q = q.c(), a.k = k.c(), a.v = v.c(), a.o = o.c(), a.lse = lse.c();
  a.d_o = d_o.c(), a.dq = dq.c(), a.dk = dk.c(), a.dv = dv.c();
  return detail::choose(a, true);
}

}  // namespace attnforge
