// The randomized differential sweep: ≥ 500 random attention calls (ATTNFORGE_SWEEP_CASES) drawn over
// every axis the compiled table offers — backend, dtype, head dim, mask kind with random windows and
// random bias tensors (float / bool, broadcast dims), varlen with empty sequences, GQA, Sq ≠ Sk,
// padded / transposed / packed-qkv layouts, outputs inside larger poisoned buffers, caller workspace —
// each checked forward and backward against the fp64 CPU reference by DESIGN.md's numerics rule.
//
// Replay: every failure prints "ATTNFORGE_SWEEP_SEED=<s> ATTNFORGE_SWEEP_CASE=<i>"; those two
// variables rerun exactly that case (ATTNFORGE_SWEEP_BACKEND=flash|fused|unfused narrows a run), and
// ATTNFORGE_SWEEP_DUMP=<dir> writes its inputs, outputs and references to a text file there.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "attnforge/reference.hpp"
#include "attention_case.hpp"
#include "reliability_util.hpp"
#include "variant_key.hpp"

namespace {

using namespace attnforge;
using reliability::View;
using test::DeviceBuffer;

constexpr int kDefaultCases = 600;
constexpr double kMaxCost = 1.2e7;  // B·Hq·Sq·Sk·D: keeps the fp64 reference of one case well under a second

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); }  // [lo, hi]
  double real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(g); }
  bool chance(double p) { return std::bernoulli_distribution(p)(g); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[size_t(uniform(0, int(v.size()) - 1))];
  }
};

const char* layout_names[] = {"contiguous", "padded", "transposed", "packed-qkv"};
enum Layout { kContiguous = 0, kPadded, kTransposed, kPacked };

// A (backend, dtype, head dim, mask) with both a forward and a backward variant compiled.
struct Combo {
  Backend backend;
  DType dtype;
  int head_dim;  // kHeadDimAny for unfused
  int mask_id;
};

std::vector<Combo> compiled_combos() {
  std::vector<Combo> out;
  std::set<std::tuple<int, int, int, int>> seen;
  for (const VariantInfo& v : all_variants()) {
    const VariantKey& k = v.key;
    if (k.direction != Direction::fwd) continue;
    if (candidates(k.backend, Direction::bwd, k.dtype, k.head_dim, k.mask_id).empty()) continue;
    if (seen.insert({int(k.backend), int(k.dtype), k.head_dim, k.mask_id}).second)
      out.push_back({k.backend, k.dtype, k.head_dim, k.mask_id});
  }
  return out;
}

// ---- one random case ---------------------------------------------------------------------------
struct SweepCase {
  int index = 0;
  uint64_t seed = 0;
  Backend backend{};
  attnforge_dtype dtype{};
  int D = 0;
  int mask_id = 0;
  std::string mask;
  int64_t scalars[4] = {-1, -1, -1, -1};
  // bias (mask kinds with a tensor)
  bool has_bias = false;
  attnforge_dtype bias_dtype = ATTNFORGE_F32;
  int bcast[4] = {0, 0, 0, 0};  // 0 full, 1 size-1 dim, 2 full size with stride 0
  bool bias_k_strided = false;  // (.., Sq, Sk) stored transposed: stride_k ≠ 1
  bool bias_masked_rows = false;
  // shape
  bool varlen = false;
  std::vector<int> lens_q, lens_k;
  int B = 1, Sq = 1, Sk = 1, Hq = 1, Hkv = 1;
  // layouts
  Layout in_layout = kContiguous, o_layout = kContiguous, do_layout = kContiguous, grad_layout = kContiguous;
  bool lse_padded = false;
  bool misaligned = false;  // o not 16-byte aligned where rows must be (needs_aligned_rows): the call must be rejected
  // call options
  bool pass_lse = true, weights = false, workspace = false, deterministic = false, by_backend = false;
  float scale = 0.0f;
  std::string fwd_variant, bwd_variant;
  uint64_t base_seed = 0;

  std::string describe() const {
    std::ostringstream os;
    os << "#" << index << " " << to_string(backend) << " " << test::dtype_name(dtype) << " D" << D;
    if (varlen) {
      os << " varlen q{";
      for (size_t i = 0; i < lens_q.size(); ++i) os << (i ? "," : "") << lens_q[i];
      os << "} k{";
      for (size_t i = 0; i < lens_k.size(); ++i) os << (i ? "," : "") << lens_k[i];
      os << "}";
    } else {
      os << " B" << B << " Sq" << Sq << " Sk" << Sk;
    }
    os << " Hq" << Hq << " Hkv" << Hkv << " " << mask;
    const int ns = mask_num_scalars(mask_id);
    if (ns) {
      os << "(";
      for (int i = 0; i < ns; ++i) os << (i ? "," : "") << scalars[i];
      os << ")";
    }
    if (has_bias) {
      os << " bias:" << test::dtype_name(bias_dtype) << "[" << bcast[0] << bcast[1] << bcast[2] << bcast[3] << "]";
      if (bias_k_strided) os << "/k-strided";
      if (bias_masked_rows) os << "/masked-rows";
    }
    os << " in:" << layout_names[in_layout] << " o:" << layout_names[o_layout] << " do:" << layout_names[do_layout]
       << " grads:" << layout_names[grad_layout];
    if (lse_padded) os << " lse-padded";
    if (misaligned) os << " MISALIGNED";
    if (!pass_lse) os << " no-lse";
    if (weights) os << " weights";
    if (workspace) os << " caller-workspace";
    if (deterministic) os << " deterministic";
    if (scale != 0.0f) os << " scale" << scale;
    if (by_backend) os << " (by backend)";
    else os << " fwd=" << fwd_variant << " bwd=" << bwd_variant;
    return os.str();
  }
  std::string replay() const {
    return "ATTNFORGE_SWEEP_SEED=" + std::to_string(base_seed) + " ATTNFORGE_SWEEP_CASE=" + std::to_string(index) +
           " ./attnforge_gpu_tests --gtest_filter='Sweep.*'";
  }
};

// Flash and the 16-bit fused kernels move rows in 16-byte vectors and refuse other views; unfused and
// the fp32 fused kernel (element-wise loads) take any element alignment, so their views are drawn at any.
bool needs_aligned_rows(const SweepCase& c) {
  return c.backend != Backend::unfused && !(c.backend == Backend::fused && c.dtype == ATTNFORGE_F32);
}

int pick_length(Rng& r) {
  const int bucket = r.uniform(0, 9);
  if (bucket < 3) return r.uniform(1, 8);
  if (bucket < 7) return r.uniform(9, 96);
  return r.uniform(97, 260);
}

// The variant names of `backend` that run this case (fused: Sk within its on-chip row).
std::vector<std::string> fitting(const SweepCase& c, Direction dir, int max_sk) {
  std::vector<std::string> out;
  for (const VariantInfo* v : candidates(c.backend, dir, DType(c.dtype), c.D, c.mask_id))
    if (max_seqlen_k(v->key) == 0 || max_sk <= max_seqlen_k(v->key)) out.push_back(v->name);
  return out;
}

int largest_limit(const SweepCase& c, Direction dir) {
  int limit = 0;
  for (const VariantInfo* v : candidates(c.backend, dir, DType(c.dtype), c.D, c.mask_id)) {
    if (max_seqlen_k(v->key) == 0) return 1 << 30;
    limit = std::max(limit, max_seqlen_k(v->key));
  }
  return limit;
}

SweepCase make_case(const std::vector<Combo>& combos, uint64_t base_seed, int index) {
  SweepCase c;
  c.index = index;
  c.base_seed = base_seed;
  c.seed = splitmix(base_seed ^ splitmix(uint64_t(index) + 1));
  Rng r(c.seed);

  // backend first (uniform over those compiled), then one of its combinations
  std::vector<Backend> backends;
  for (const Combo& k : combos)
    if (std::find(backends.begin(), backends.end(), k.backend) == backends.end()) backends.push_back(k.backend);
  c.backend = r.pick(backends);
  std::vector<Combo> mine;
  for (const Combo& k : combos)
    if (k.backend == c.backend) mine.push_back(k);
  const Combo combo = r.pick(mine);
  c.dtype = attnforge_dtype(int(combo.dtype));
  c.mask_id = combo.mask_id;
  c.mask = mask_name(combo.mask_id);
  c.D = combo.head_dim != kHeadDimAny ? combo.head_dim
                                      : r.pick(std::vector<int>{1, 7, 16, 32, 40, 64, 64, 80, 96, 128, 128, 160, 256});
  const bool aligned_only = needs_aligned_rows(c);
  const int limit = std::min(largest_limit(c, Direction::fwd), largest_limit(c, Direction::bwd));

  // shape: resample until the CPU reference stays cheap
  for (int attempt = 0;; ++attempt) {
    c.Hkv = r.uniform(1, 3);
    c.Hq = c.Hkv * r.pick(std::vector<int>{1, 1, 2, 3, 4});
    c.varlen = r.chance(0.3);
    const bool same_lengths = r.chance(0.3);  // makes packed qkv possible
    if (c.varlen) {
      const int n = r.uniform(1, 5);
      c.lens_q.assign(size_t(n), 0), c.lens_k.assign(size_t(n), 0);
      for (int i = 0; i < n; ++i) {
        c.lens_q[size_t(i)] = r.chance(0.2) ? 0 : pick_length(r);
        c.lens_k[size_t(i)] = same_lengths ? c.lens_q[size_t(i)] : r.chance(0.2) ? 0 : pick_length(r);
      }
      for (int& l : c.lens_k) l = std::min(l, limit);
      // at least one token in each packed tensor (a tensor of size 0 is invalid by contract)
      int tq = 0, tk = 0;
      for (int i = 0; i < n; ++i) tq += c.lens_q[size_t(i)], tk += c.lens_k[size_t(i)];
      if (tq == 0) c.lens_q[size_t(r.uniform(0, n - 1))] = r.uniform(1, 40);
      if (tk == 0) c.lens_k[size_t(r.uniform(0, n - 1))] = std::min(limit, r.uniform(1, 40));
      c.B = n;
      c.Sq = std::max(1, *std::max_element(c.lens_q.begin(), c.lens_q.end()));
      c.Sk = std::max(1, *std::max_element(c.lens_k.begin(), c.lens_k.end()));
    } else {
      c.B = r.uniform(1, 3);
      c.Sq = pick_length(r);
      c.Sk = same_lengths ? c.Sq : pick_length(r);
      c.Sk = std::min(c.Sk, limit);
      if (same_lengths) c.Sq = c.Sk;
    }
    const double cost = double(c.B) * c.Hq * c.Sq * c.Sk * c.D;
    if (cost <= kMaxCost || attempt > 50) break;
  }
  const bool packable = c.varlen ? c.lens_q == c.lens_k : c.Sq == c.Sk;

  // mask scalars (window: left, right; -1 = unbounded) and bias
  for (int i = 0; i < mask_num_scalars(c.mask_id); ++i)
    c.scalars[i] = r.chance(0.3) ? -1 : r.chance(0.2) ? 0 : r.uniform(1, std::max(c.Sq, c.Sk) + 4);
  if (mask_has_tensor(c.mask_id)) {
    c.has_bias = true;
    c.bias_dtype = r.pick(std::vector<attnforge_dtype>{c.dtype, ATTNFORGE_F32, ATTNFORGE_BOOL});
    for (int& b : c.bcast) b = r.chance(0.35) ? r.uniform(1, 2) : 0;
    c.bias_k_strided = r.chance(0.15);
    c.bias_masked_rows = r.chance(0.3) && c.bcast[2] == 0;
  }

  // layouts
  std::vector<Layout> in = {kContiguous, kPadded, kTransposed};
  if (packable) in.insert(in.end(), {kPacked, kPacked});
  c.in_layout = r.pick(in);
  c.grad_layout = r.pick(in);
  c.o_layout = r.pick(std::vector<Layout>{kContiguous, kPadded, kTransposed});
  c.do_layout = r.pick(std::vector<Layout>{kContiguous, kPadded, kTransposed});
  c.lse_padded = r.chance(0.3);
  c.misaligned = aligned_only && r.chance(0.03);
  if (c.misaligned) c.o_layout = kPadded;

  // options
  c.pass_lse = r.chance(0.85);
  c.weights = c.backend != Backend::flash && !c.varlen && r.chance(0.25) &&
              double(c.B) * c.Hq * c.Sq * c.Sk <= 4e5;
  c.workspace = r.chance(0.5);
  c.deterministic = r.chance(0.3);
  if (r.chance(0.2)) c.scale = float(r.real(0.02, 0.4));
  c.by_backend = r.chance(0.1);
  const auto fv = fitting(c, Direction::fwd, c.Sk), bv = fitting(c, Direction::bwd, c.Sk);
  c.fwd_variant = fv.empty() ? "" : r.pick(fv);
  c.bwd_variant = bv.empty() ? "" : r.pick(bv);
  return c;
}

// ---- layouts in buffers ---------------------------------------------------------------------------
// Token tensors of one (q or k/v) side: dense (B, S, H, D) or varlen (total, H, D).
struct TokenShape {
  bool varlen;
  int64_t B, S, H, D;  // S = total when varlen
};

// Element padding for a stride: arbitrary for unfused, multiples of 8 (16 bytes) for flash/fused.
int64_t pad(Rng& r, bool aligned, int max_units = 3) {
  return aligned ? 8 * r.uniform(0, max_units) : r.uniform(0, 8 * max_units);
}

// One tensor's view inside its own buffer, with a random leading offset (the guard before) and room
// after (the guard behind). Transposed: (B, H, S, D) memory seen as (B, S, H, D).
View token_view(Rng& r, const TokenShape& s, Layout layout, bool aligned, int64_t& buffer_elems) {
  const int64_t lead = pad(r, aligned, 4);
  View v;
  if (layout == kContiguous || layout == kPadded) {
    const bool p = layout == kPadded;
    const int64_t dp = s.D + (p ? pad(r, aligned) : 0);
    const int64_t row = s.H * dp + (p ? pad(r, aligned) : 0);
    if (s.varlen) {
      v = reliability::make_view({s.S, s.H, s.D}, {row, dp, 1}, lead);
    } else {
      const int64_t batch = s.S * row + (p ? pad(r, aligned) : 0);
      v = reliability::make_view({s.B, s.S, s.H, s.D}, {batch, row, dp, 1}, lead);
    }
  } else {  // transposed
    if (s.varlen) v = reliability::make_view({s.S, s.H, s.D}, {s.D, s.S * s.D, 1}, lead);
    else v = reliability::make_view({s.B, s.S, s.H, s.D}, {s.H * s.S * s.D, s.D, s.S * s.D, 1}, lead);
  }
  buffer_elems = v.extent() + pad(r, aligned, 4);
  return v;
}

// q, k, v (or dq, dk, dv) as slices of one packed (.., S, Hq + 2·Hkv, D) tensor.
void packed_views(Rng& r, const TokenShape& q, int64_t Hkv, bool aligned, View out[3], int64_t& buffer_elems) {
  const int64_t lead = pad(r, aligned, 4);
  const int64_t H = q.H + 2 * Hkv, row = H * q.D;
  const int64_t heads[3] = {q.H, Hkv, Hkv}, first[3] = {0, q.H, q.H + Hkv};
  for (int i = 0; i < 3; ++i) {
    if (q.varlen) out[i] = reliability::make_view({q.S, heads[i], q.D}, {row, q.D, 1}, lead + first[i] * q.D);
    else out[i] = reliability::make_view({q.B, q.S, heads[i], q.D}, {q.S * row, row, q.D, 1}, lead + first[i] * q.D);
  }
  buffer_elems = lead + (q.varlen ? q.S : q.B * q.S) * row + pad(r, aligned, 4);
}

// ---- running one case on the GPU -------------------------------------------------------------------
struct Tensors {
  // views and host copies of the inputs (NaN outside the views)
  View q, k, v, d_o, o, lse, p, dq, dk, dv, bias;
  bool packed_in = false, packed_grads = false;
  std::vector<double> in_buf[3], do_buf, bias_buf;
  int64_t o_elems = 0, lse_elems = 0, p_elems = 0, grad_elems[3] = {0, 0, 0};
  std::vector<int32_t> cu_q, cu_k;
  int64_t total_q = 0, total_k = 0;
};

Tensors make_tensors(const SweepCase& c) {
  Rng r(c.seed * 31 + 7);
  Tensors t;
  const bool aligned = needs_aligned_rows(c);
  if (c.varlen) {
    t.cu_q.assign(1, 0), t.cu_k.assign(1, 0);
    for (size_t i = 0; i < c.lens_q.size(); ++i)
      t.cu_q.push_back(t.cu_q.back() + c.lens_q[i]), t.cu_k.push_back(t.cu_k.back() + c.lens_k[i]);
    t.total_q = t.cu_q.back(), t.total_k = t.cu_k.back();
  } else {
    t.total_q = int64_t(c.B) * c.Sq, t.total_k = int64_t(c.B) * c.Sk;
  }
  const TokenShape qs{c.varlen, c.B, c.varlen ? t.total_q : c.Sq, c.Hq, c.D};
  const TokenShape ks{c.varlen, c.B, c.varlen ? t.total_k : c.Sk, c.Hkv, c.D};
  int64_t n[3] = {0, 0, 0};

  // inputs: NaN everywhere, random normals (rounded to the dtype) inside the views
  t.packed_in = c.in_layout == kPacked;
  if (t.packed_in) {
    View vs[3];
    packed_views(r, qs, c.Hkv, aligned, vs, n[0]);
    t.q = vs[0], t.k = vs[1], t.v = vs[2];
  } else {
    t.q = token_view(r, qs, c.in_layout, aligned, n[0]);
    t.k = token_view(r, ks, c.in_layout, aligned, n[1]);
    t.v = token_view(r, ks, c.in_layout, aligned, n[2]);
  }
  for (int i = 0; i < (t.packed_in ? 1 : 3); ++i) {
    t.in_buf[i].resize(size_t(n[i]));
    reliability::fill_nan(t.in_buf[i]);
  }
  std::vector<double>& qb = t.in_buf[0];
  std::vector<double>& kb = t.in_buf[t.packed_in ? 0 : 1];
  std::vector<double>& vb = t.in_buf[t.packed_in ? 0 : 2];
  reliability::scatter(qb, t.q, test::random_normal(size_t(t.q.numel()), c.seed * 8 + 1, c.dtype));
  reliability::scatter(kb, t.k, test::random_normal(size_t(t.k.numel()), c.seed * 8 + 2, c.dtype));
  reliability::scatter(vb, t.v, test::random_normal(size_t(t.v.numel()), c.seed * 8 + 3, c.dtype));
  int64_t ndo = 0;
  t.d_o = token_view(r, qs, c.do_layout, aligned, ndo);
  t.do_buf.resize(size_t(ndo));
  reliability::fill_nan(t.do_buf);
  reliability::scatter(t.do_buf, t.d_o, test::random_normal(size_t(t.d_o.numel()), c.seed * 8 + 4, c.dtype));

  // outputs: views inside poisoned buffers
  t.o = token_view(r, qs, c.o_layout, aligned, t.o_elems);
  if (c.misaligned) {  // o one element off a 16-byte boundary: flash and fused must refuse it
    t.o.offset += 1;
    t.o_elems += 1;
  }
  const int64_t lpad = !c.lse_padded ? 0 : aligned ? 4 * r.uniform(1, 3) : r.uniform(1, 9);
  if (c.varlen) {
    t.lse = reliability::make_view({c.Hq, t.total_q}, {t.total_q + lpad, 1}, lpad);
  } else {
    const int64_t hs = c.Sq + lpad;
    t.lse = reliability::make_view({c.B, c.Hq, c.Sq}, {c.Hq * hs + lpad, hs, 1}, lpad);
  }
  t.lse_elems = t.lse.extent() + lpad;
  if (c.weights) {
    t.p = reliability::contiguous_view({c.B, c.Hq, c.Sq, c.Sk});
    t.p_elems = t.p.numel();
  }
  t.packed_grads = c.grad_layout == kPacked;
  if (t.packed_grads) {
    View vs[3];
    packed_views(r, qs, c.Hkv, aligned, vs, t.grad_elems[0]);
    t.dq = vs[0], t.dk = vs[1], t.dv = vs[2];
  } else {
    t.dq = token_view(r, qs, c.grad_layout, aligned, t.grad_elems[0]);
    t.dk = token_view(r, ks, c.grad_layout, aligned, t.grad_elems[1]);
    t.dv = token_view(r, ks, c.grad_layout, aligned, t.grad_elems[2]);
  }

  // bias: (B, Hq, Sq, Sk) with broadcast dims as size 1 or as stride 0; optionally k-major storage
  if (c.has_bias) {
    const int64_t full[4] = {c.B, c.Hq, c.Sq, c.Sk};
    int64_t stored[4], sizes[4];
    for (int i = 0; i < 4; ++i) {
      stored[i] = c.bcast[i] ? 1 : full[i];
      sizes[i] = c.bcast[i] == 1 ? 1 : full[i];
    }
    int64_t st[4];
    if (c.bias_k_strided) {  // memory (B, H, Sk, Sq)
      st[2] = 1, st[3] = stored[2], st[1] = stored[2] * stored[3], st[0] = st[1] * stored[1];
    } else {
      st[3] = 1, st[2] = stored[3], st[1] = stored[2] * stored[3], st[0] = st[1] * stored[1];
    }
    for (int i = 0; i < 4; ++i)
      if (c.bcast[i] == 2) st[i] = 0;
      else if (c.bcast[i] == 1) st[i] = r.uniform(0, 3);  // a size-1 dim's stride is never used
    t.bias = reliability::make_view({sizes[0], sizes[1], sizes[2], sizes[3]}, {st[0], st[1], st[2], st[3]});
    const int64_t elems = stored[0] * stored[1] * stored[2] * stored[3];
    t.bias_buf = test::random_normal(size_t(elems), c.seed * 8 + 5,
                                     c.bias_dtype == ATTNFORGE_BOOL ? ATTNFORGE_F32 : c.bias_dtype);
    if (c.bias_dtype == ATTNFORGE_BOOL)
      for (double& x : t.bias_buf) x = x > -0.84 ? 1.0 : 0.0;  // ~80 % visible
    else
      for (double& x : t.bias_buf) x = r.chance(0.05) ? -std::numeric_limits<double>::infinity() : x;
    if (c.bias_masked_rows) {  // a few query rows see no key at all
      const double off = c.bias_dtype == ATTNFORGE_BOOL ? 0.0 : -std::numeric_limits<double>::infinity();
      for (int row = 0; row < c.Sq; ++row) {
        if (!r.chance(0.15)) continue;
        for (int64_t b = 0; b < stored[0]; ++b)
          for (int64_t h = 0; h < stored[1]; ++h)
            for (int64_t j = 0; j < stored[3]; ++j) {
              // the stored element (b, h, row, j): strides of the stored block (before stride-0 broadcast)
              const int64_t s3 = c.bias_k_strided ? stored[2] : 1, s2 = c.bias_k_strided ? 1 : stored[3];
              t.bias_buf[size_t(b * stored[1] * stored[2] * stored[3] + h * stored[2] * stored[3] + row * s2 +
                                j * s3)] = off;
            }
      }
    }
  }
  return t;
}

// What came back from the GPU (logical row-major copies), or why the case failed early.
struct Outcome {
  bool done = false;     // ran (or was correctly rejected)
  bool rejected = false; // misaligned case: refused as expected
  bool det_rejected = false;  // deterministic=1 refused with a reason (UNSUPPORTED), run without it
  std::string failure;   // non-empty: failed on the GPU side
  std::string variants;  // the variants that ran (select_backend's answer)
  std::vector<double> o, lse, p, dq, dk, dv;
};

std::string status_line(const char* what, attnforge_status s) {
  return std::string(what) + " returned " + attnforge_status_string(s) + ": " + attnforge_last_error();
}

Outcome run_on_gpu(const SweepCase& c, const Tensors& t) {
  Outcome out;
  const size_t es = test::dtype_size(c.dtype);
  // device copies
  DeviceBuffer in[3];
  for (int i = 0; i < (t.packed_in ? 1 : 3); ++i) in[i] = test::upload(t.in_buf[i], c.dtype);
  const DeviceBuffer& qd = in[0];
  const DeviceBuffer& kd = in[t.packed_in ? 0 : 1];
  const DeviceBuffer& vd = in[t.packed_in ? 0 : 2];
  DeviceBuffer dod = test::upload(t.do_buf, c.dtype);
  DeviceBuffer o(size_t(t.o_elems) * es), lse(size_t(t.lse_elems) * 4), p(size_t(std::max<int64_t>(t.p_elems, 1)) * es);
  DeviceBuffer cu_q, cu_k, bias;
  if (c.varlen) cu_q = test::upload_int32(t.cu_q), cu_k = test::upload_int32(t.cu_k);
  if (c.has_bias) bias = test::upload(t.bias_buf, c.bias_dtype);
  std::vector<std::vector<uint8_t>> inputs_before;
  for (const DeviceBuffer* b : {&in[0], &in[1], &in[2], &dod})
    if (b->get()) inputs_before.push_back(reliability::download_bytes(*b));

  attnforge_args a;
  auto fill = [&](Direction dir, bool with_lse) {
    attnforge_args_init(&a);
    a.q = reliability::tensor_of(qd, c.dtype, t.q);
    a.k = reliability::tensor_of(kd, c.dtype, t.k);
    a.v = reliability::tensor_of(vd, c.dtype, t.v);
    a.o = reliability::tensor_of(o, c.dtype, t.o);
    if (with_lse) a.lse = reliability::tensor_of(lse, ATTNFORGE_F32, t.lse);
    if (dir == Direction::fwd && c.weights) a.weights = reliability::tensor_of(p, c.dtype, t.p);
    if (c.varlen) {
      a.cu_seqlens_q = cu_q.as<const int32_t>(), a.cu_seqlens_k = cu_k.as<const int32_t>();
      a.batch_varlen = c.B, a.max_seqlen_q = c.Sq, a.max_seqlen_k = c.Sk;
    }
    a.scale = c.scale;
    a.mask.kind = c.mask.c_str();
    for (int i = 0; i < 4; ++i) a.mask.scalars[i] = c.scalars[i];
    if (c.has_bias) a.mask.bias = reliability::tensor_of(bias, c.bias_dtype, t.bias);
    if (c.by_backend) a.backend = attnforge_backend(int(c.backend));
    else a.variant = dir == Direction::fwd ? c.fwd_variant.c_str() : c.bwd_variant.c_str();
    a.deterministic = c.deterministic;
  };
  // The caller's workspace, poisoned (kernels must not expect zeros), when the case asks for one.
  DeviceBuffer ws;
  auto with_workspace = [&](int is_backward) -> std::string {
    if (!c.workspace) return "";
    size_t bytes = 0;
    if (attnforge_status s = attnforge_workspace_size(&a, is_backward, &bytes); s != ATTNFORGE_OK)
      return status_line("attnforge_workspace_size", s);
    ws = DeviceBuffer(std::max<size_t>(bytes, 1));
    a.workspace = ws.get(), a.workspace_bytes = bytes;
    return "";
  };
  auto untouched = [&](const char* name, const DeviceBuffer& b, size_t elem, std::vector<View> views) -> std::string {
    int64_t first = -1;
    const size_t n = reliability::touched_outside(reliability::download_bytes(b), elem, views, &first);
    if (n == 0) return "";
    return std::string(name) + ": " + std::to_string(n) + " elements written outside the view (first at element " +
           std::to_string(first) + ")";
  };

  // ---- forward -----------------------------------------------------------------------------------
  fill(Direction::fwd, c.pass_lse);
  if (std::string e = with_workspace(0); !e.empty()) return out.failure = e, out;
  attnforge_status s = attnforge_forward(&a, nullptr);
  if (c.misaligned) {
    ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
    if (s != ATTNFORGE_UNSUPPORTED && s != ATTNFORGE_INVALID_ARGUMENT)
      return out.failure = "expected a misaligned o to be rejected, got " + status_line("attnforge_forward", s), out;
    if (std::string e = untouched("o (rejected call)", o, es, {}); !e.empty()) return out.failure = e, out;
    out.done = out.rejected = true;
    return out;
  }
  if (s != ATTNFORGE_OK) return out.failure = status_line("attnforge_forward", s), out;
  ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
  {
    char name[160] = {};
    (void)attnforge_select_backend(&a, 0, nullptr, name, sizeof name, nullptr, 0);
    out.variants = name;
  }
  out.o = reliability::gather(test::download(o, size_t(t.o_elems), c.dtype), t.o);
  if (std::string e = untouched("o", o, es, {t.o}); !e.empty()) return out.failure = e, out;
  if (c.weights) out.p = test::download(p, size_t(t.p_elems), c.dtype);
  if (!c.pass_lse) {  // the library used its own LSE; run again with one for the backward
    if (std::string e = untouched("lse (not passed)", lse, 4, {}); !e.empty()) return out.failure = e, out;
    fill(Direction::fwd, true);
    if (std::string e = with_workspace(0); !e.empty()) return out.failure = e, out;
    if ((s = attnforge_forward(&a, nullptr)) != ATTNFORGE_OK)
      return out.failure = status_line("attnforge_forward (with lse)", s), out;
    ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
  }
  out.lse = reliability::gather(test::download(lse, size_t(t.lse_elems), ATTNFORGE_F32), t.lse);
  if (std::string e = untouched("lse", lse, 4, {t.lse}); !e.empty()) return out.failure = e, out;

  // ---- backward ----------------------------------------------------------------------------------
  auto backward = [&](std::vector<double>* dq, std::vector<double>* dk, std::vector<double>* dv) -> std::string {
    DeviceBuffer g[3];
    for (int i = 0; i < (t.packed_grads ? 1 : 3); ++i) g[i] = DeviceBuffer(size_t(t.grad_elems[i]) * es);
    const DeviceBuffer& gq = g[0];
    const DeviceBuffer& gk = g[t.packed_grads ? 0 : 1];
    const DeviceBuffer& gv = g[t.packed_grads ? 0 : 2];
    fill(Direction::bwd, true);
    a.d_o = reliability::tensor_of(dod, c.dtype, t.d_o);
    a.dq = reliability::tensor_of(gq, c.dtype, t.dq);
    a.dk = reliability::tensor_of(gk, c.dtype, t.dk);
    a.dv = reliability::tensor_of(gv, c.dtype, t.dv);
    if (out.det_rejected) a.deterministic = 0;
    if (std::string e = with_workspace(1); !e.empty()) return e;
    char name[160] = {};
    (void)attnforge_select_backend(&a, 1, nullptr, name, sizeof name, nullptr, 0);
    if (out.variants.find(" / ") == std::string::npos) out.variants += std::string(" / ") + name;
    attnforge_status st = attnforge_backward(&a, nullptr);
    if (st == ATTNFORGE_UNSUPPORTED && a.deterministic &&
        std::string(attnforge_last_error()).find("deterministic") != std::string::npos) {
      // a backend that cannot be bitwise reproducible says so (fused: fp32 atomics); the
      // numerics are still checked, without the flag
      out.det_rejected = true;
      a.deterministic = 0;
      if (std::string e = with_workspace(1); !e.empty()) return e;
      st = attnforge_backward(&a, nullptr);
    }
    if (st != ATTNFORGE_OK) return status_line("attnforge_backward", st);
    ATTNFORGE_TEST_CUDA(cudaDeviceSynchronize());
    *dq = reliability::gather(test::download(gq, size_t(t.grad_elems[0]), c.dtype), t.dq);
    *dk = reliability::gather(test::download(gk, gk.bytes() / es, c.dtype), t.dk);
    *dv = reliability::gather(test::download(gv, gv.bytes() / es, c.dtype), t.dv);
    if (t.packed_grads) return untouched("dq/dk/dv (packed)", gq, es, {t.dq, t.dk, t.dv});
    if (std::string e = untouched("dq", gq, es, {t.dq}); !e.empty()) return e;
    if (std::string e = untouched("dk", gk, es, {t.dk}); !e.empty()) return e;
    return untouched("dv", gv, es, {t.dv});
  };
  if (std::string e = backward(&out.dq, &out.dk, &out.dv); !e.empty()) return out.failure = e, out;
  if (c.deterministic && !out.det_rejected) {  // bitwise the same on a second run
    std::vector<double> dq2, dk2, dv2;
    if (std::string e = backward(&dq2, &dk2, &dv2); !e.empty()) return out.failure = "second backward: " + e, out;
    auto same = [](const std::vector<double>& x, const std::vector<double>& y) {
      return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [](double u, double w) {
               return u == w || (std::isnan(u) && std::isnan(w));
             });
    };
    if (!same(out.dq, dq2) || !same(out.dk, dk2) || !same(out.dv, dv2))
      return out.failure = "deterministic backward differs between two runs", out;
  }
  // inputs never written
  size_t i = 0;
  for (const DeviceBuffer* b : {&in[0], &in[1], &in[2], &dod})
    if (b->get() && reliability::download_bytes(*b) != inputs_before[i++])
      return out.failure = "an input buffer (q/k/v/d_o) was modified", out;
  out.done = true;
  return out;
}

// ---- the CPU side: fp64 reference, low-precision baseline, the rule ---------------------------------
// ATTNFORGE_SWEEP_DUMP=<dir>: one text file per checked case — "# describe", "scale", "bias_sizes", then
// one line "name count values…" per array (%.17g) — for replaying a failure in NumPy.
void dump_case(const std::string& path, const SweepCase& c, const Tensors& t,
               const std::vector<std::pair<const char*, const std::vector<double>*>>& arrays) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "[ sweep    ] cannot write %s\n", path.c_str());
    return;
  }
  std::fprintf(f, "# %s\nscale %.17g\nbias_sizes %lld %lld %lld %lld\n", c.describe().c_str(), double(c.scale),
               (long long)t.bias.sizes[0], (long long)t.bias.sizes[1], (long long)t.bias.sizes[2],
               (long long)t.bias.sizes[3]);
  for (const auto& [name, values] : arrays) {
    std::fprintf(f, "%s %zu", name, values->size());
    for (double x : *values) std::fprintf(f, " %.17g", x);
    std::fprintf(f, "\n");
  }
  std::fclose(f);
}

std::string check_against_reference(const SweepCase& c, const Tensors& t, const Outcome& g) {
  const auto q = reliability::gather(t.in_buf[0], t.q);
  const auto k = reliability::gather(t.in_buf[t.packed_in ? 0 : 1], t.k);
  const auto v = reliability::gather(t.in_buf[t.packed_in ? 0 : 2], t.v);
  const auto d_o = reliability::gather(t.do_buf, t.d_o);
  std::vector<double> qc = q, kc = k, vc = v, doc = d_o, bias = t.bias_buf;

  ReferenceProblem pr;
  pr.batch = c.B;
  pr.seqlen_q = c.Sq, pr.seqlen_k = c.Sk;
  pr.heads_q = c.Hq, pr.heads_kv = c.Hkv, pr.head_dim = c.D;
  pr.cu_seqlens_q = c.varlen ? t.cu_q.data() : nullptr;
  pr.cu_seqlens_k = c.varlen ? t.cu_k.data() : nullptr;
  pr.scale = c.scale;
  pr.mask = c.mask;
  for (int i = 0; i < 4; ++i) pr.scalars[i] = c.scalars[i];
  if (c.has_bias) {
    pr.bias.data = bias.data();
    pr.bias.rank = 4;
    for (int i = 0; i < 4; ++i) pr.bias.sizes[i] = t.bias.sizes[i], pr.bias.strides[i] = t.bias.strides[i];
    pr.bias_is_bool = c.bias_dtype == ATTNFORGE_BOOL;
  }
  auto tok = [&](std::vector<double>& x, int64_t S, int64_t H) {
    return c.varlen ? HostTensor::contiguous(x.data(), {S, H, c.D}) : HostTensor::contiguous(x.data(), {c.B, S, H, c.D});
  };
  const int64_t sq = c.varlen ? t.total_q : c.Sq, sk = c.varlen ? t.total_k : c.Sk;
  const HostTensor hq = tok(qc, sq, c.Hq), hk = tok(kc, sk, c.Hkv), hv = tok(vc, sk, c.Hkv), hdo = tok(doc, sq, c.Hq);
  const size_t nq = q.size(), nk = k.size(), nl = size_t(t.lse.numel());
  std::vector<double> ro(nq), lo(nq), rl(nl), ll(nl), rp, lp;
  auto lse_t = [&](std::vector<double>& x) {
    return c.varlen ? HostTensor::contiguous(x.data(), {c.Hq, t.total_q}) : HostTensor::contiguous(x.data(), {c.B, c.Hq, c.Sq});
  };
  HostTensor hrp, hlp;
  if (c.weights) {
    rp.assign(size_t(t.p.numel()), 0.0), lp.assign(size_t(t.p.numel()), 0.0);
    hrp = HostTensor::contiguous(rp.data(), {c.B, c.Hq, c.Sq, c.Sk});
    hlp = HostTensor::contiguous(lp.data(), {c.B, c.Hq, c.Sq, c.Sk});
  }
  reference_forward(pr, hq, hk, hv, tok(ro, sq, c.Hq), lse_t(rl), hrp);
  reference_lowp_forward(c.dtype, pr, hq, hk, hv, tok(lo, sq, c.Hq), lse_t(ll), hlp);
  std::vector<double> rq(nq), rk(nk), rv(nk), lq(nq), lk(nk), lv(nk);
  reference_backward(pr, hq, hk, hv, hdo, tok(rq, sq, c.Hq), tok(rk, sk, c.Hkv), tok(rv, sk, c.Hkv));
  reference_lowp_backward(c.dtype, pr, hq, hk, hv, hdo, tok(lq, sq, c.Hq), tok(lk, sk, c.Hkv), tok(lv, sk, c.Hkv));

  if (const char* dir = std::getenv("ATTNFORGE_SWEEP_DUMP"); dir != nullptr && *dir != '\0') {
    // Everything the check sees, logical row-major, for offline analysis of one replayed case.
    const auto bias_logical = c.has_bias ? reliability::gather(t.bias_buf, t.bias) : std::vector<double>{};
    const std::vector<std::pair<const char*, const std::vector<double>*>> arrays = {
        {"q", &q},         {"k", &k},          {"v", &v},          {"do", &d_o},        {"bias", &bias_logical},
        {"gpu_o", &g.o},   {"gpu_lse", &g.lse}, {"gpu_dq", &g.dq}, {"gpu_dk", &g.dk},   {"gpu_dv", &g.dv},
        {"ref_o", &ro},    {"ref_lse", &rl},   {"ref_dq", &rq},    {"ref_dk", &rk},     {"ref_dv", &rv},
        {"lowp_o", &lo},   {"lowp_lse", &ll},  {"lowp_dq", &lq},   {"lowp_dk", &lk},    {"lowp_dv", &lv}};
    dump_case(std::string(dir) + "/sweep_case_" + std::to_string(c.index) + ".txt", c, t, arrays);
  }

  std::ostringstream log;
  bool ok = true;
  ok &= reliability::numerics_rule(log, "O", t.q, c.dtype, g.o, ro, lo, 2.0);
  ok &= reliability::numerics_rule(log, "LSE", t.lse, ATTNFORGE_F32, g.lse, rl, ll, 2.0);
  if (c.weights) ok &= reliability::numerics_rule(log, "P", t.p, c.dtype, g.p, rp, lp, 2.0);
  ok &= reliability::numerics_rule(log, "dQ", t.q, c.dtype, g.dq, rq, lq, 3.0);
  ok &= reliability::numerics_rule(log, "dK", t.k, c.dtype, g.dk, rk, lk, 3.0);
  ok &= reliability::numerics_rule(log, "dV", t.v, c.dtype, g.dv, rv, lv, 3.0);
  return ok ? "" : log.str();
}

// The axes a case exercises, for the end-of-run tally.
std::vector<std::string> axis_tags(const SweepCase& c) {
  std::vector<std::string> t = {std::string(test::dtype_name(c.dtype)), "D" + std::to_string(c.D), c.mask,
                                std::string("in:") + layout_names[c.in_layout],
                                std::string("grads:") + layout_names[c.grad_layout]};
  if (c.varlen) t.push_back("varlen");
  if (c.varlen && std::count(c.lens_q.begin(), c.lens_q.end(), 0) + std::count(c.lens_k.begin(), c.lens_k.end(), 0))
    t.push_back("empty-seq");
  if (c.Hq != c.Hkv) t.push_back("gqa");
  if (c.Sq != c.Sk) t.push_back("sq!=sk");
  if (c.has_bias) t.push_back(std::string("bias:") + test::dtype_name(c.bias_dtype));
  if (c.has_bias && (c.bcast[0] || c.bcast[1] || c.bcast[2] || c.bcast[3])) t.push_back("bias-broadcast");
  if (c.bias_masked_rows) t.push_back("masked-rows");
  if (c.weights) t.push_back("weights");
  if (c.workspace) t.push_back("caller-workspace");
  if (!c.pass_lse) t.push_back("no-lse");
  if (c.deterministic) t.push_back("deterministic");
  if (c.misaligned) t.push_back("misaligned");
  return t;
}

std::optional<uint64_t> env_u64(const char* name) {
  const char* s = std::getenv(name);
  if (s == nullptr || *s == '\0') return std::nullopt;
  return std::strtoull(s, nullptr, 10);
}

TEST(Sweep, RandomCasesMatchTheReference) {
  ATTNFORGE_REQUIRE_GPU();
  const std::vector<Combo> combos = [] {
    std::vector<Combo> all = compiled_combos(), out;
    const char* only = std::getenv("ATTNFORGE_SWEEP_BACKEND");
    for (const Combo& k : all)
      if (only == nullptr || *only == '\0' || std::string(to_string(k.backend)) == only) out.push_back(k);
    return out;
  }();
  if (combos.empty()) GTEST_SKIP() << "no (backend, dtype, head dim, mask) with forward and backward compiled";

  const uint64_t base = env_u64("ATTNFORGE_SWEEP_SEED").value_or(std::random_device{}() & 0xffffffffu);
  const int count = int(env_u64("ATTNFORGE_SWEEP_CASES").value_or(kDefaultCases));
  const std::optional<uint64_t> only_case = env_u64("ATTNFORGE_SWEEP_CASE");
  std::printf("[ sweep    ] ATTNFORGE_SWEEP_SEED=%llu, %d cases over %zu compiled combinations\n",
              (unsigned long long)base, only_case ? 1 : count, combos.size());
  RecordProperty("sweep_seed", std::to_string(base));

  std::vector<int> indices;
  if (only_case) indices.push_back(int(*only_case));
  else
    for (int i = 0; i < count; ++i) indices.push_back(i);

  // Chunks: the GPU runs a chunk one case after another, then all cores check it against the
  // reference (the reference dominates the time; memory stays bounded).
  const unsigned workers = std::max(1u, std::thread::hardware_concurrency());
  const size_t chunk = std::max<size_t>(32, 2 * workers);
  std::map<std::string, int> ran, failed_by_backend, axes, det_rejected;
  std::vector<std::string> one_liners;  // every failure, one line each (the first 25 in full above)
  int rejected = 0, failures = 0, reported = 0;
  bool context_lost = false;
  const auto start = std::chrono::steady_clock::now();
  size_t total_run = 0;
  for (size_t first = 0; first < indices.size() && !context_lost; first += chunk) {
    const size_t n = std::min(chunk, indices.size() - first);
    std::vector<SweepCase> cases;
    std::vector<Tensors> tensors;
    std::vector<Outcome> outcomes;
    for (size_t i = 0; i < n; ++i) {
      cases.push_back(make_case(combos, base, indices[first + i]));
      tensors.push_back(make_tensors(cases.back()));
      try {
        outcomes.push_back(run_on_gpu(cases.back(), tensors.back()));
      } catch (const std::exception& e) {
        Outcome o;
        o.failure = std::string("exception: ") + e.what();
        outcomes.push_back(o);
      }
      // A kernel fault (illegal address, ...) kills the CUDA context: every later case would
      // fail for that one reason, so stop here and name the case that did it.
      if (const cudaError_t e = cudaDeviceSynchronize(); e != cudaSuccess) {
        outcomes.back().failure += std::string("\n  CUDA context lost after this case: ") + cudaGetErrorName(e) +
                                   " (" + cudaGetErrorString(e) + "); the sweep stops here";
        context_lost = true;
        break;
      }
    }
    const size_t n_run = outcomes.size();
    std::vector<std::string> verdict(n_run);
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i = next++; i < n_run; i = next++) {
        if (!outcomes[i].failure.empty() || outcomes[i].rejected) continue;
        try {
          verdict[i] = check_against_reference(cases[i], tensors[i], outcomes[i]);
        } catch (const std::exception& e) {
          verdict[i] = std::string("reference threw: ") + e.what();
        }
      }
    };
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < std::min<unsigned>(workers, unsigned(n_run)); ++w) pool.emplace_back(work);
    for (auto& th : pool) th.join();

    total_run += n_run;
    for (size_t i = 0; i < n_run; ++i) {
      const SweepCase& c = cases[i];
      const std::string backend = to_string(c.backend);
      ++ran[backend];
      for (const std::string& tag : axis_tags(c)) ++axes[tag];
      if (outcomes[i].rejected) ++rejected;
      if (outcomes[i].det_rejected) ++det_rejected[backend];
      const std::string why = !outcomes[i].failure.empty() ? outcomes[i].failure + "\n" : verdict[i];
      if (why.empty()) continue;
      ++failures, ++failed_by_backend[backend];
      {  // the first line that says FAIL (else the first line), with the seed to replay
        std::istringstream lines(why);
        std::string line, first, fail;
        while (std::getline(lines, line)) {
          if (first.empty()) first = line;
          if (fail.empty() && line.find("FAIL") != std::string::npos) fail = line;
        }
        one_liners.push_back(c.describe() + " :: " + (fail.empty() ? first : fail) + " :: " + c.replay());
      }
      if (++reported <= 25) {
        ADD_FAILURE() << "sweep case " << c.describe() << "\n  seed " << c.seed << " (ran " << outcomes[i].variants
                      << ")\n" << why << "  replay: " << c.replay();
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ sweep    ] %zu cases in %.1f s: %d failed, %d misaligned calls rejected as expected\n", total_run,
              secs, failures, rejected);
  EXPECT_FALSE(context_lost) << "the CUDA context was lost; only " << total_run << " of " << indices.size()
                             << " cases ran";
  for (const auto& [b, k] : ran)
    std::printf("[ sweep    ]   %-8s %4d cases, %d failed, %d deterministic=1 refused with a reason\n", b.c_str(), k,
                failed_by_backend[b], det_rejected[b]);
  for (const std::string& line : one_liners) std::printf("[ sweep    ] FAILED %s\n", line.c_str());
  std::string drawn;
  for (const auto& [tag, k] : axes) drawn += " " + tag + "=" + std::to_string(k);
  std::printf("[ sweep    ] drawn:%s\n", drawn.c_str());
  if (failures > reported) ADD_FAILURE() << (failures - reported) << " more failing cases not shown";
  EXPECT_EQ(failures, 0) << "ATTNFORGE_SWEEP_SEED=" << base;
}

// Without a GPU: the fp64 reference evaluated directly on the strided views (padding NaN, packed and
// transposed layouts) equals the one on the gathered contiguous copies — the views address exactly
// the logical elements — and prints what the CPU side of a case costs.
TEST(Sweep, ViewsAddressTheLogicalElements) {
  const std::vector<Combo> combos = compiled_combos();
  if (combos.empty()) GTEST_SKIP() << "no (backend, dtype, head dim, mask) with forward and backward compiled";
  const int n = int(env_u64("ATTNFORGE_SWEEP_SELFCHECK_CASES").value_or(24));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    const SweepCase c = make_case(combos, 777, i);
    if (c.misaligned) continue;  // a view the call must refuse; nothing to compare
    if (std::getenv("ATTNFORGE_SWEEP_VERBOSE")) std::printf("%s\n", c.describe().c_str()), std::fflush(stdout);
    Tensors t = make_tensors(c);
    if (std::getenv("ATTNFORGE_SWEEP_VERBOSE")) {
      for (const View* v : {&t.q, &t.k, &t.v, &t.o, &t.bias})
        std::printf("  view off %lld sizes %lld %lld %lld %lld strides %lld %lld %lld %lld extent %lld\n", (long long)v->offset,
                    (long long)v->sizes[0], (long long)v->sizes[1], (long long)v->sizes[2], (long long)v->sizes[3],
                    (long long)v->strides[0], (long long)v->strides[1], (long long)v->strides[2], (long long)v->strides[3],
                    (long long)v->extent());
      std::printf("  bufs %zu %zu %zu bias %zu\n", t.in_buf[0].size(), t.in_buf[1].size(), t.in_buf[2].size(), t.bias_buf.size());
      std::fflush(stdout);
    }
    ReferenceProblem pr;
    pr.batch = c.B, pr.seqlen_q = c.Sq, pr.seqlen_k = c.Sk, pr.heads_q = c.Hq, pr.heads_kv = c.Hkv, pr.head_dim = c.D;
    pr.cu_seqlens_q = c.varlen ? t.cu_q.data() : nullptr;
    pr.cu_seqlens_k = c.varlen ? t.cu_k.data() : nullptr;
    pr.mask = c.mask;
    pr.scale = c.scale;
    for (int j = 0; j < 4; ++j) pr.scalars[j] = c.scalars[j];
    if (c.has_bias) {
      pr.bias.data = t.bias_buf.data(), pr.bias.rank = 4;
      for (int j = 0; j < 4; ++j) pr.bias.sizes[j] = t.bias.sizes[j], pr.bias.strides[j] = t.bias.strides[j];
      pr.bias_is_bool = c.bias_dtype == ATTNFORGE_BOOL;
    }
    auto strided = [](std::vector<double>& buf, const View& v) {
      HostTensor h;
      h.data = buf.data() + v.offset, h.rank = v.rank;
      for (int j = 0; j < v.rank; ++j) h.sizes[j] = v.sizes[j], h.strides[j] = v.strides[j];
      return h;
    };
    std::vector<double> o_buf(size_t(t.o_elems), 0.0);
    std::vector<double>& kb = t.in_buf[t.packed_in ? 0 : 1];
    std::vector<double>& vb = t.in_buf[t.packed_in ? 0 : 2];
    reference_forward(pr, strided(t.in_buf[0], t.q), strided(kb, t.k), strided(vb, t.v), strided(o_buf, t.o));
    const auto o_views = reliability::gather(o_buf, t.o);
    Outcome fake;
    fake.o = o_views;
    auto q = reliability::gather(t.in_buf[0], t.q), k = reliability::gather(kb, t.k), v = reliability::gather(vb, t.v);
    std::vector<double> o(q.size());
    auto tok = [&](std::vector<double>& x, int64_t S, int64_t H) {
      return c.varlen ? HostTensor::contiguous(x.data(), {S, H, c.D}) : HostTensor::contiguous(x.data(), {c.B, S, H, c.D});
    };
    const int64_t sq = c.varlen ? t.total_q : c.Sq, sk = c.varlen ? t.total_k : c.Sk;
    reference_forward(pr, tok(q, sq, c.Hq), tok(k, sk, c.Hkv), tok(v, sk, c.Hkv), tok(o, sq, c.Hq));
    ASSERT_EQ(o.size(), o_views.size());
    for (size_t e = 0; e < o.size(); ++e) ASSERT_EQ(o[e], o_views[e]) << c.describe() << " element " << e;
    // and the CPU side of the case end to end, with the reference itself standing in for the GPU
    Outcome self;
    self.o = o;
    std::vector<double> lse(size_t(t.lse.numel()));
    reference_forward(pr, tok(q, sq, c.Hq), tok(k, sk, c.Hkv), tok(v, sk, c.Hkv), tok(o, sq, c.Hq),
                      c.varlen ? HostTensor::contiguous(lse.data(), {c.Hq, t.total_q})
                               : HostTensor::contiguous(lse.data(), {c.B, c.Hq, c.Sq}));
    self.lse = lse;
    std::vector<double> dq(q.size()), dk(k.size()), dv(v.size()), d_o = reliability::gather(t.do_buf, t.d_o);
    reference_backward(pr, tok(q, sq, c.Hq), tok(k, sk, c.Hkv), tok(v, sk, c.Hkv), tok(d_o, sq, c.Hq), tok(dq, sq, c.Hq),
                       tok(dk, sk, c.Hkv), tok(dv, sk, c.Hkv));
    self.dq = dq, self.dk = dk, self.dv = dv;
    if (c.weights) {
      self.p.assign(size_t(t.p.numel()), 0.0);
      reference_forward(pr, tok(q, sq, c.Hq), tok(k, sk, c.Hkv), tok(v, sk, c.Hkv), tok(o, sq, c.Hq), {},
                        HostTensor::contiguous(self.p.data(), {c.B, c.Hq, c.Sq, c.Sk}));
    }
    EXPECT_EQ(check_against_reference(c, t, self), "") << c.describe();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ sweep    ] %d cases checked on the CPU in %.1f s (%.3f s per case)\n", n, secs, secs / n);
}

// Without a GPU: ATTNFORGE_SWEEP_LIST=1 prints the cases a seed draws (ATTNFORGE_SWEEP_SEED, _CASES)
// on this build's table, e.g. to see which axes a failing run covered. Skipped otherwise.
TEST(Sweep, ListCases) {
  if (!std::getenv("ATTNFORGE_SWEEP_LIST")) GTEST_SKIP() << "set ATTNFORGE_SWEEP_LIST=1 to list the cases of a seed";
  const std::vector<Combo> combos = compiled_combos();
  if (combos.empty()) GTEST_SKIP() << "no (backend, dtype, head dim, mask) with forward and backward compiled";
  const uint64_t base = env_u64("ATTNFORGE_SWEEP_SEED").value_or(0);
  const int count = int(env_u64("ATTNFORGE_SWEEP_CASES").value_or(kDefaultCases));
  for (int i = 0; i < count; ++i) std::printf("%s\n", make_case(combos, base, i).describe().c_str());
}

// The generator itself, without a GPU: every axis the issue lists shows up among 600 cases.
TEST(Sweep, GeneratorCoversEveryAxis) {
  const std::vector<Combo> combos = compiled_combos();
  if (combos.empty()) GTEST_SKIP() << "no (backend, dtype, head dim, mask) with forward and backward compiled";
  std::set<std::string> seen;
  for (int i = 0; i < kDefaultCases; ++i) {
    const SweepCase c = make_case(combos, 12345, i);
    ASSERT_FALSE(c.by_backend == false && (c.fwd_variant.empty() || c.bwd_variant.empty())) << c.describe();
    seen.insert(std::string("backend:") + to_string(c.backend));
    seen.insert(std::string("dtype:") + test::dtype_name(c.dtype));
    seen.insert("mask:" + c.mask);
    seen.insert(std::string("layout:") + layout_names[c.in_layout]);
    if (c.varlen) seen.insert("varlen");
    if (c.varlen && std::count(c.lens_q.begin(), c.lens_q.end(), 0)) seen.insert("empty-seq");
    if (c.Hq != c.Hkv) seen.insert("gqa");
    if (c.Sq != c.Sk) seen.insert("sq!=sk");
    if (c.has_bias) seen.insert(std::string("bias:") + test::dtype_name(c.bias_dtype));
    const Tensors t = make_tensors(c);  // layouts are consistent (views fit their buffers)
    ASSERT_LE(t.q.extent(), int64_t(t.in_buf[0].size())) << c.describe();
    ASSERT_LE(t.o.extent(), t.o_elems) << c.describe();
    ASSERT_LE(t.dq.extent(), t.grad_elems[0]) << c.describe();
  }
  std::string all;
  for (const std::string& s : seen) all += s + " ";
  std::printf("[ sweep    ] axes seen: %s\n", all.c_str());
  for (const char* need : {"varlen", "empty-seq", "gqa", "sq!=sk", "layout:transposed", "layout:padded"})
    EXPECT_TRUE(seen.count(need)) << need << " never drawn; seen: " << all;
  for (const Combo& k : combos) {
    EXPECT_TRUE(seen.count(std::string("backend:") + to_string(k.backend)));
    EXPECT_TRUE(seen.count(std::string("mask:") + mask_name(k.mask_id)));
  }
}

}  // namespace
