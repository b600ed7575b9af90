// NumericsCase: random inputs of a reduced shape, the fp64 reference and the low-precision
// baseline on the CPU, and each candidate's GPU result measured against them.
#include "check.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "attnforge/reference.hpp"
#include "device.hpp"
#include "problem.hpp"

namespace attnforge::tuner {

TuneShape reduced_shape(const TuneShape& s) {
  TuneShape r = s;
  r.batch = 1;
  const int group = s.heads_q / s.heads_kv;
  r.heads_kv = std::min(s.heads_kv, 2);
  r.heads_q = r.heads_kv * std::min(group, 2);
  r.seqlen_q = std::min(s.seqlen_q, 192);
  if (s.seqlen_k == s.seqlen_q) r.seqlen_k = r.seqlen_q;
  else if (s.seqlen_k > s.seqlen_q) r.seqlen_k = std::min(s.seqlen_k, std::max(r.seqlen_q + 64, 256));
  else r.seqlen_k = std::min(s.seqlen_k, std::max(1, r.seqlen_q - 64));
  return r;
}

struct NumericsCase::Data {
  Extents ext{};
  // Inputs as dtype bits (uploaded) and as doubles (the reference's view of the same values).
  std::vector<uint8_t> q_bits, k_bits, v_bits, do_bits, bias_bits, o_bits;
  std::vector<double> q, k, v, d_o, bias;
  std::vector<float> lse_f;  // backward input: the reference LSE in fp32
  // fp64 reference and low-precision baseline outputs.
  std::vector<double> o_ref, o_lp, lse_ref;
  std::vector<double> dq_ref, dk_ref, dv_ref, dq_lp, dk_lp, dv_lp;
};

namespace {

HostTensor ht(std::vector<double>& v, std::initializer_list<int64_t> sizes) {
  return HostTensor::contiguous(v.data(), sizes);
}

// max |a − ref| over all elements; NaN in `a` (an unwritten, poisoned element) → +inf.
double max_err(const std::vector<double>& a, const std::vector<double>& ref) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i])) return std::numeric_limits<double>::infinity();
    m = std::max(m, std::abs(a[i] - ref[i]));
  }
  return m;
}

std::string fmt(const char* name, double err, double bound) {
  char b[128];
  std::snprintf(b, sizeof b, "%s: max err %.2e %s bound %.2e", name, err, err <= bound ? "<=" : ">", bound);
  return b;
}

}  // namespace

NumericsCase::NumericsCase(const TuneShape& full, uint64_t seed) : shape_(reduced_shape(full)), d_(new Data) {
  const TuneShape& s = shape_;
  Data& d = *d_;
  d.ext = extents(s);
  const attnforge_dtype t = s.dtype;
  d.q_bits = random_normal_bits(t, d.ext.q, seed * 8 + 1);
  d.k_bits = random_normal_bits(t, d.ext.kv, seed * 8 + 2);
  d.v_bits = random_normal_bits(t, d.ext.kv, seed * 8 + 3);
  d.q = bits_to_doubles(t, d.q_bits);
  d.k = bits_to_doubles(t, d.k_bits);
  d.v = bits_to_doubles(t, d.v_bits);
  if (d.ext.bias) {
    d.bias_bits = random_normal_bits(t, d.ext.bias, seed * 8 + 4);
    d.bias = bits_to_doubles(t, d.bias_bits);
  }
  ReferenceProblem pr;
  pr.batch = s.batch;
  pr.seqlen_q = s.seqlen_q;
  pr.seqlen_k = s.seqlen_k;
  pr.heads_q = s.heads_q;
  pr.heads_kv = s.heads_kv;
  pr.head_dim = s.head_dim;
  pr.mask = s.mask;
  for (int i = 0; i < ATTNFORGE_MAX_MASK_SCALARS; ++i) pr.scalars[i] = s.scalars[size_t(i)];
  if (d.ext.bias) pr.bias = ht(d.bias, {1, 1, s.seqlen_q, s.seqlen_k});  // broadcast over B, Hq

  const int64_t B = s.batch, Sq = s.seqlen_q, Sk = s.seqlen_k, Hq = s.heads_q, Hkv = s.heads_kv, D = s.head_dim;
  auto Q = ht(d.q, {B, Sq, Hq, D}), K = ht(d.k, {B, Sk, Hkv, D}), V = ht(d.v, {B, Sk, Hkv, D});
  d.o_ref.assign(d.ext.q, 0);
  d.lse_ref.assign(d.ext.lse, 0);
  reference_forward(pr, Q, K, V, ht(d.o_ref, {B, Sq, Hq, D}), ht(d.lse_ref, {B, Hq, Sq}));
  if (!s.backward) {
    d.o_lp.assign(d.ext.q, 0);
    reference_lowp_forward(t, pr, Q, K, V, ht(d.o_lp, {B, Sq, Hq, D}));
    return;
  }
  // Backward inputs: O as the dtype would hold it, the reference LSE in fp32, random dO.
  std::vector<double> o_rounded(d.ext.q);
  for (size_t i = 0; i < d.ext.q; ++i) o_rounded[i] = round_to_dtype(t, d.o_ref[i]);
  d.o_bits.resize(d.ext.q * dtype_bytes(t));
  for (size_t i = 0; i < d.ext.q; ++i) {
    const float f = float(o_rounded[i]);
    if (t == ATTNFORGE_F32) std::memcpy(d.o_bits.data() + i * 4, &f, 4);
    else {
      const uint16_t h = t == ATTNFORGE_BF16 ? f32_to_bf16_bits(f) : f32_to_f16_bits(f);
      std::memcpy(d.o_bits.data() + i * 2, &h, 2);
    }
  }
  d.lse_f.resize(d.ext.lse);
  for (size_t i = 0; i < d.ext.lse; ++i) d.lse_f[i] = float(d.lse_ref[i]);
  d.do_bits = random_normal_bits(t, d.ext.q, seed * 8 + 5);
  d.d_o = bits_to_doubles(t, d.do_bits);
  auto dO = ht(d.d_o, {B, Sq, Hq, D});
  for (auto* g : {&d.dq_ref, &d.dq_lp}) g->assign(d.ext.q, 0);
  for (auto* g : {&d.dk_ref, &d.dv_ref, &d.dk_lp, &d.dv_lp}) g->assign(d.ext.kv, 0);
  reference_backward(pr, Q, K, V, dO, ht(d.dq_ref, {B, Sq, Hq, D}), ht(d.dk_ref, {B, Sk, Hkv, D}),
                     ht(d.dv_ref, {B, Sk, Hkv, D}));
  reference_lowp_backward(t, pr, Q, K, V, dO, ht(d.dq_lp, {B, Sq, Hq, D}), ht(d.dk_lp, {B, Sk, Hkv, D}),
                          ht(d.dv_lp, {B, Sk, Hkv, D}));
}

NumericsCase::~NumericsCase() = default;

CheckResult NumericsCase::check(const std::string& variant) {
  CheckResult r;
  try {
    const TuneShape& s = shape_;
    Data& d = *d_;
    const size_t eb = dtype_bytes(s.dtype);
    auto upload = [](DeviceBuffer& b, const void* host, size_t bytes) {
      b.reserve(bytes);
      cuda_check(cudaMemcpy(b.get(), host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy(H2D)");
    };
    DeviceBuffer q, k, v, o, lse, bias, d_o, dq, dk, dv;
    upload(q, d.q_bits.data(), d.q_bits.size());
    upload(k, d.k_bits.data(), d.k_bits.size());
    upload(v, d.v_bits.data(), d.v_bits.size());
    if (d.ext.bias) upload(bias, d.bias_bits.data(), d.bias_bits.size());
    CallTensors t;
    t.q = q.get(), t.k = k.get(), t.v = v.get(), t.bias = bias.get();
    if (!s.backward) {
      o.reserve(d.ext.q * eb);
      lse.reserve(d.ext.lse * 4);
      o.poison();
      lse.poison();
      t.o = o.get();
      t.lse = static_cast<float*>(lse.get());
      attnforge_args a = make_args(s, t);
      a.variant = variant.c_str();
      if (attnforge_status st = attnforge_forward(&a, nullptr); st != ATTNFORGE_OK) {
        r.detail = std::string("forward failed: ") + attnforge_last_error();
        return r;
      }
      cuda_check(cudaDeviceSynchronize(), "forward");
      const auto out = device_to_doubles(s.dtype, o.get(), d.ext.q);
      const double err = max_err(out, d.o_ref), bound = 2 * max_err(d.o_lp, d.o_ref) + 1e-5;
      r.pass = err <= bound;
      r.detail = fmt("O", err, bound);
      return r;
    }
    upload(o, d.o_bits.data(), d.o_bits.size());
    upload(lse, d.lse_f.data(), d.lse_f.size() * 4);
    upload(d_o, d.do_bits.data(), d.do_bits.size());
    dq.reserve(d.ext.q * eb);
    dk.reserve(d.ext.kv * eb);
    dv.reserve(d.ext.kv * eb);
    for (auto* b : {&dq, &dk, &dv}) b->poison();
    t.o = o.get(), t.lse = static_cast<float*>(lse.get()), t.d_o = d_o.get();
    t.dq = dq.get(), t.dk = dk.get(), t.dv = dv.get();
    attnforge_args a = make_args(s, t);
    a.variant = variant.c_str();
    if (attnforge_status st = attnforge_backward(&a, nullptr); st != ATTNFORGE_OK) {
      r.detail = std::string("backward failed: ") + attnforge_last_error();
      return r;
    }
    cuda_check(cudaDeviceSynchronize(), "backward");
    r.pass = true;
    struct G {
      const char* name;
      const DeviceBuffer* dev;
      size_t n;
      const std::vector<double>* ref;
      const std::vector<double>* lp;
    } grads[] = {{"dQ", &dq, d.ext.q, &d.dq_ref, &d.dq_lp},
                 {"dK", &dk, d.ext.kv, &d.dk_ref, &d.dk_lp},
                 {"dV", &dv, d.ext.kv, &d.dv_ref, &d.dv_lp}};
    for (const G& g : grads) {
      const auto out = device_to_doubles(s.dtype, g.dev->get(), g.n);
      const double err = max_err(out, *g.ref), bound = 3 * max_err(*g.lp, *g.ref) + 1e-5;
      r.pass = r.pass && err <= bound;
      r.detail += (r.detail.empty() ? "" : ", ") + fmt(g.name, err, bound);
    }
  } catch (const std::exception& e) {
    r.pass = false;
    r.detail = e.what();
  }
  return r;
}

}  // namespace attnforge::tuner
