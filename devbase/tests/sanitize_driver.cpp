// The compute-sanitizer driver (scripts/sanitize.sh): runs every compiled variant — or those whose
// names contain argv[1] — on two small shapes (dense with odd lengths and GQA; varlen with empty
// sequences), forward variants directly, backward variants after a forward. No result checking
// here (the GPU tests do that): the sanitizer judges memory, races, init and sync. Exit 1 on a
// failed call. Self-contained: libattnforge + cudart only.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "attnforge/attnforge.h"
#include "attnforge/reference.hpp"
#include "tensor_view.hpp"
#include "variant_key.hpp"

namespace {

using namespace attnforge;

bool check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "%s failed: %s\n", what, cudaGetErrorString(e));
  return false;
}

// A device buffer of `n` elements of dtype t filled with random normals (bool: ~80 % ones).
struct Buf {
  void* p = nullptr;
  Buf() = default;
  Buf(size_t n, attnforge_dtype t, uint64_t seed, bool poison = false) {
    const size_t es = t == ATTNFORGE_F32 ? 4 : t == ATTNFORGE_BOOL ? 1 : 2;
    const size_t bytes = std::max<size_t>(n, 1) * es;
    check(cudaMalloc(&p, bytes), "cudaMalloc");
    if (poison) {
      check(cudaMemset(p, 0xFF, bytes), "cudaMemset");  // NaN: an output, initialised for initcheck
      return;
    }
    std::vector<uint8_t> host(bytes);
    std::mt19937_64 g(seed);
    std::normal_distribution<float> d;
    for (size_t i = 0; i < n; ++i) {
      const float x = d(g);
      if (t == ATTNFORGE_F32) std::memcpy(&host[4 * i], &x, 4);
      else if (t == ATTNFORGE_BOOL) host[i] = x > -0.84f;
      else {
        const uint16_t h = t == ATTNFORGE_F16 ? f32_to_f16_bits(x) : f32_to_bf16_bits(x);
        std::memcpy(&host[2 * i], &h, 2);
      }
    }
    check(cudaMemcpy(p, host.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  Buf(Buf&& o) noexcept : p(o.p) { o.p = nullptr; }
  Buf& operator=(Buf&& o) noexcept {
    std::swap(p, o.p);
    return *this;
  }
  ~Buf() {
    if (p) cudaFree(p);
  }
};

using attnforge::test::contiguous_tensor;

struct Shape {
  const char* name;
  int B, Sq, Sk, Hq, Hkv;
  std::vector<int32_t> cu_q, cu_k;  // varlen when set
  bool deterministic;
};

// One variant on one shape; returns false on a failed call.
bool run(const VariantInfo& v, Shape s) {
  const VariantKey& k = v.key;
  const attnforge_dtype t = attnforge_dtype(int(k.dtype));
  const int D = k.head_dim == kHeadDimAny ? 40 : k.head_dim;
  const int limit = max_seqlen_k(k);
  const bool varlen = !s.cu_q.empty();
  if (limit > 0 && s.Sk > limit) {
    s.Sk = limit;
    if (varlen)
      for (size_t i = 1; i < s.cu_k.size(); ++i)
        s.cu_k[i] = std::min<int32_t>(s.cu_k[i], s.cu_k[i - 1] + limit);
  }
  const int64_t tq = varlen ? s.cu_q.back() : int64_t(s.B) * s.Sq, tk = varlen ? s.cu_k.back() : int64_t(s.B) * s.Sk;
  const size_t nq = size_t(tq) * s.Hq * D, nk = size_t(tk) * s.Hkv * D;
  Buf q(nq, t, 1), kk(nk, t, 2), vv(nk, t, 3), d_o(nq, t, 4), o(nq, t, 0, true), lse(size_t(tq) * s.Hq, ATTNFORGE_F32, 0, true);
  Buf dq(nq, t, 0, true), dk(nk, t, 0, true), dv(nk, t, 0, true), cu_q, cu_k, bias;
  attnforge_args a;
  attnforge_args_init(&a);
  if (varlen) {
    a.q = contiguous_tensor(q.p, t, {tq, s.Hq, D}), a.o = contiguous_tensor(o.p, t, {tq, s.Hq, D});
    a.k = contiguous_tensor(kk.p, t, {tk, s.Hkv, D}), a.v = contiguous_tensor(vv.p, t, {tk, s.Hkv, D});
    a.lse = contiguous_tensor(lse.p, ATTNFORGE_F32, {s.Hq, tq});
    for (auto [buf, host] : {std::pair{&cu_q, &s.cu_q}, std::pair{&cu_k, &s.cu_k}}) {
      check(cudaMalloc(&buf->p, host->size() * 4), "cudaMalloc");
      check(cudaMemcpy(buf->p, host->data(), host->size() * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
    }
    a.cu_seqlens_q = static_cast<const int32_t*>(cu_q.p), a.cu_seqlens_k = static_cast<const int32_t*>(cu_k.p);
    a.batch_varlen = s.B, a.max_seqlen_q = s.Sq, a.max_seqlen_k = s.Sk;
  } else {
    a.q = contiguous_tensor(q.p, t, {s.B, s.Sq, s.Hq, D}), a.o = contiguous_tensor(o.p, t, {s.B, s.Sq, s.Hq, D});
    a.k = contiguous_tensor(kk.p, t, {s.B, s.Sk, s.Hkv, D}), a.v = contiguous_tensor(vv.p, t, {s.B, s.Sk, s.Hkv, D});
    a.lse = contiguous_tensor(lse.p, ATTNFORGE_F32, {s.B, s.Hq, s.Sq});
  }
  a.mask.kind = mask_name(k.mask_id);
  for (int i = 0; i < mask_num_scalars(k.mask_id); ++i) a.mask.scalars[i] = i == 0 ? 17 : 3;  // window (17, 3)
  if (mask_has_tensor(k.mask_id)) {
    // dense: a full bool mask; varlen: an additive bias broadcast over batch and heads
    const attnforge_dtype bt = varlen ? attnforge_dtype(int(k.dtype)) : ATTNFORGE_BOOL;
    const int64_t bb = varlen ? 1 : s.B, bh = varlen ? 1 : s.Hq;
    bias = Buf(size_t(bb * bh * s.Sq * s.Sk), bt, 5);
    a.mask.bias = contiguous_tensor(bias.p, bt, {bb, bh, s.Sq, s.Sk});
  }
  a.deterministic = s.deterministic;
  if (k.direction == Direction::fwd) {
    a.variant = v.name;
  } else {
    a.backend = attnforge_backend(int(k.backend));
    if (attnforge_forward(&a, nullptr) != ATTNFORGE_OK) {
      // the backend has no forward for this combination: any backend's forward gives O and LSE
      a.backend = ATTNFORGE_BACKEND_AUTO;
      if (attnforge_forward(&a, nullptr) != ATTNFORGE_OK) {
        std::fprintf(stderr, "FAIL %s %s: forward for the backward: %s\n", v.name, s.name, attnforge_last_error());
        return false;
      }
    }
    a.backend = ATTNFORGE_BACKEND_AUTO;
    a.d_o = a.o, a.d_o.data = d_o.p;
    a.dq = a.q, a.dq.data = dq.p;
    a.dk = a.k, a.dk.data = dk.p;
    a.dv = a.v, a.dv.data = dv.p;
    a.variant = v.name;
  }
  attnforge_status st = k.direction == Direction::fwd ? attnforge_forward(&a, nullptr) : attnforge_backward(&a, nullptr);
  if (st == ATTNFORGE_UNSUPPORTED && a.deterministic && std::strstr(attnforge_last_error(), "deterministic")) {
    a.deterministic = 0;  // a backend without a bitwise-reproducible backward (fused) says so: run it plainly
    st = attnforge_backward(&a, nullptr);
  }
  const cudaError_t e = cudaDeviceSynchronize();
  if (st != ATTNFORGE_OK || e != cudaSuccess) {
    std::fprintf(stderr, "FAIL %s %s: %s %s (%s)\n", v.name, s.name, attnforge_status_string(st), attnforge_last_error(),
                 cudaGetErrorString(e));
    return false;
  }
  std::printf("ok   %s %s\n", v.name, s.name);
  return true;
}

}  // namespace

// Usage: attnforge_sanitize_driver [name-substring] [shard/shards]   (e.g. "" 1/3: every third variant)
int main(int argc, char** argv) {
  const std::string filter = argc > 1 ? argv[1] : "";
  int shard = 0, shards = 1;
  if (argc > 2 && std::sscanf(argv[2], "%d/%d", &shard, &shards) != 2) shard = 0, shards = 1;
  if (shards < 1 || shard < 0 || shard >= shards) shard = 0, shards = 1;
  int n = 0, failed = 0, index = -1;
  const Shape shapes[2] = {
      {"dense(B2,Sq77,Sk129,Hq4,Hkv2)", 2, 77, 129, 4, 2, {}, {}, false},
      {"varlen(q{33,0,70},k{50,17,0},Hq2,Hkv1,det)", 3, 70, 50, 2, 1, {0, 33, 33, 103}, {0, 50, 67, 67}, true},
  };
  for (const VariantInfo& v : all_variants()) {
    if (!filter.empty() && std::string(v.name).find(filter) == std::string::npos) continue;
    if (++index % shards != shard) continue;
    for (const Shape& s : shapes) {
      ++n;
      if (!run(v, s)) ++failed;
    }
  }
  std::printf("sanitize driver: %d runs, %d failed\n", n, failed);
  return failed ? 1 : 0;
}
