// check_case: builds a Case's tensors, runs the C API forward/backward on the GPU and compares with
// the fp64 CPU reference under the numerics rule (attention_case.hpp documents the contract).
#include "attention_case.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <numeric>
#include <sstream>

#include "attnforge/reference.hpp"

namespace attnforge::test {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kPad = 8;  // strided cases: elements of padding after each head's D values

// A tensor's shape and strides plus how many elements its allocation holds.
struct Layout {
  int rank = 0;
  int64_t sizes[4] = {0, 0, 0, 0};
  int64_t strides[4] = {0, 0, 0, 0};
  size_t elems = 0;  // allocation, padding included
};

Layout contiguous(std::initializer_list<int64_t> sizes) {
  Layout l;
  l.rank = int(sizes.size());
  int i = 0;
  for (int64_t s : sizes) l.sizes[i++] = s;
  int64_t stride = 1;
  for (int d = l.rank - 1; d >= 0; --d) l.strides[d] = stride, stride *= l.sizes[d];
  l.elems = size_t(stride);
  return l;
}

// Token tensors: dense (B, S, H, D) or varlen (total, H, D); strided ⇒ each head row padded.
Layout token_layout(bool varlen, int64_t B, int64_t S_or_total, int64_t H, int64_t D, bool strided) {
  const int64_t dp = strided ? D + kPad : D;
  Layout l;
  if (varlen) {
    l.rank = 3;
    const int64_t s[3] = {S_or_total, H, D}, st[3] = {H * dp, dp, 1};
    std::copy(s, s + 3, l.sizes), std::copy(st, st + 3, l.strides);
    l.elems = size_t(std::max<int64_t>(S_or_total, 1) * H * dp);
  } else {
    l.rank = 4;
    const int64_t s[4] = {B, S_or_total, H, D}, st[4] = {S_or_total * H * dp, H * dp, dp, 1};
    std::copy(s, s + 4, l.sizes), std::copy(st, st + 4, l.strides);
    l.elems = size_t(B * S_or_total * H * dp);
  }
  return l;
}

attnforge_tensor device_tensor(const DeviceBuffer& buf, attnforge_dtype dtype, const Layout& l) {
  attnforge_tensor t{};
  t.data = buf.get();
  t.dtype = dtype;
  t.rank = l.rank;
  for (int i = 0; i < l.rank; ++i) t.sizes[i] = l.sizes[i], t.strides[i] = l.strides[i];
  return t;
}

HostTensor host_tensor(std::vector<double>& data, const Layout& l) {
  HostTensor t;
  t.data = data.data();
  t.rank = l.rank;
  for (int i = 0; i < l.rank; ++i) t.sizes[i] = l.sizes[i], t.strides[i] = l.strides[i];
  return t;
}

// Every logical element's offset (padding excluded), in row-major order of the sizes.
std::vector<int64_t> offsets(const Layout& l) {
  std::vector<int64_t> out;
  int64_t n = 1;
  for (int i = 0; i < l.rank; ++i) n *= l.sizes[i];
  out.reserve(size_t(n));
  std::vector<int64_t> idx(size_t(l.rank), 0);
  for (int64_t e = 0; e < n; ++e) {
    int64_t off = 0;
    for (int i = 0; i < l.rank; ++i) off += idx[size_t(i)] * l.strides[i];
    out.push_back(off);
    for (int i = l.rank - 1; i >= 0; --i) {
      if (++idx[size_t(i)] < l.sizes[i]) break;
      idx[size_t(i)] = 0;
    }
  }
  return out;
}


// The numerics rule on one tensor's logical elements (padding left out), logged by name.
bool rule(std::ostringstream& log, const char* name, attnforge_dtype dtype, const Layout& l,
          const std::vector<double>& out, const std::vector<double>& ref, const std::vector<double>& lowp,
          double factor, double abs_tol) {
  const auto offs = offsets(l);
  std::vector<double> o(offs.size()), r(offs.size()), w(offs.size());
  for (size_t e = 0; e < offs.size(); ++e)
    o[e] = out[size_t(offs[e])], r[e] = ref[size_t(offs[e])], w[e] = lowp[size_t(offs[e])];
  const RuleCheck c = numerics_rule(o, r, w, factor, abs_tol, significand_bits(dtype));
  log_rule(log, name, c, o, r, l.rank, l.sizes);
  return c.ok;
}

}  // namespace

namespace {
// "[i0, i1, …]": the multi-index of row-major element `logical` of a (sizes[0], …, sizes[rank − 1]) tensor.
std::string index_string(int rank, const int64_t* sizes, size_t logical) {
  std::vector<int64_t> idx(static_cast<size_t>(rank));
  for (int i = rank - 1; i >= 0; --i) idx[size_t(i)] = int64_t(logical) % sizes[i], logical /= size_t(sizes[i]);
  std::string s = "[";
  for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(idx[size_t(i)]);
  return s + "]";
}
}  // namespace

void log_rule(std::ostream& log, const char* name, const RuleCheck& c, const std::vector<double>& out,
              const std::vector<double>& ref, int rank, const int64_t* sizes) {
  const std::string index_at = index_string(rank, sizes, c.at);
  log << "  " << name << ": max|out-ref| = " << c.err << ", max|lowp-ref| = " << c.lowp_err;
  if (c.lowp_err == c.lowp_floor) log << " (the half-ulp floor)";
  log << ", bound = " << c.bound;
  switch (c.failure) {
    case RuleCheck::Failure::none: break;
    case RuleCheck::Failure::nan: log << "  FAIL: NaN at " << index_at << " (unwritten or invalid)"; break;
    case RuleCheck::Failure::infinity_mismatch:
      log << "  FAIL: reference is " << ref[c.at] << " at " << index_at << ", got " << out[c.at];
      break;
    case RuleCheck::Failure::too_far:
      log << "  FAIL at " << index_at << ": out " << out[c.at] << ", ref " << ref[c.at];
      break;
  }
  log << "\n";
}

int significand_bits(attnforge_dtype t) {
  switch (t) {
    case ATTNFORGE_F16: return 11;
    case ATTNFORGE_BF16: return 8;
    default: return 24;
  }
}

RuleCheck numerics_rule(const std::vector<double>& out, const std::vector<double>& ref,
                        const std::vector<double>& lowp, double factor, double abs_tol, int significand_bits) {
  if (out.size() != ref.size() || lowp.size() != ref.size())
    throw std::invalid_argument("numerics_rule: out, ref and lowp must have the same size");
  RuleCheck c;
  size_t worst = 0;
  double ref_max = 0.0;
  for (size_t e = 0; e < out.size(); ++e) {
    const double o = out[e], r = ref[e], w = lowp[e];
    if (std::isinf(r)) {  // −inf LSE of a fully masked row: must match exactly
      if (!(o == r) && c.failure == RuleCheck::Failure::none) c.failure = RuleCheck::Failure::infinity_mismatch, c.at = e;
      continue;
    }
    if (std::isnan(o)) {
      if (c.failure == RuleCheck::Failure::none) c.failure = RuleCheck::Failure::nan, c.at = e;
      continue;
    }
    const double d = std::abs(o - r);
    if (d > c.err) c.err = d, worst = e;
    if (!std::isnan(w)) c.lowp_err = std::max(c.lowp_err, std::abs(w - r));
    ref_max = std::max(ref_max, std::abs(r));
  }
  if (significand_bits > 0 && ref_max > 0.0) {  // ½ ulp at ref_max = 2^(e − bits − 1), ref_max = f·2^e, f ∈ [½, 1)
    int e = 0;
    std::frexp(ref_max, &e);
    c.lowp_floor = std::ldexp(1.0, e - significand_bits - 1);
    c.lowp_err = std::max(c.lowp_err, c.lowp_floor);
  }
  c.bound = factor * c.lowp_err + abs_tol;
  if (c.failure == RuleCheck::Failure::none && !(c.err <= c.bound)) c.failure = RuleCheck::Failure::too_far, c.at = worst;
  c.ok = c.failure == RuleCheck::Failure::none;
  return c;
}

namespace {

uint64_t case_seed(const Case& c) {
  if (const char* env = std::getenv("ATTNFORGE_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  if (c.seed) return c.seed;
  return std::hash<std::string>{}(c.describe()) & 0xffffffffull;
}

// Everything a run needs, built once per case.
struct Setup {
  Case c;
  bool varlen = false;
  int B = 0, Sq = 0, Sk = 0;
  int64_t total_q = 0, total_k = 0;
  uint64_t seed = 0;
  Layout lq, lk, lse, weights, bias;
  std::vector<int32_t> cu_q, cu_k;
  std::vector<double> q, k, v, d_o, bias_values;
  attnforge_dtype bias_dtype = ATTNFORGE_F32;
};

Setup make_setup(const Case& c) {
  Setup s;
  s.c = c;
  s.varlen = !c.varlen_q.empty();
  if (s.varlen) {
    if (c.varlen_q.size() != c.varlen_k.size())
      throw std::invalid_argument("Case: varlen_q and varlen_k must have the same number of sequences");
    s.B = int(c.varlen_q.size());
    s.cu_q.assign(1, 0), s.cu_k.assign(1, 0);
    for (size_t i = 0; i < c.varlen_q.size(); ++i) {
      s.cu_q.push_back(s.cu_q.back() + c.varlen_q[i]);
      s.cu_k.push_back(s.cu_k.back() + c.varlen_k[i]);
    }
    s.Sq = std::max(1, *std::max_element(c.varlen_q.begin(), c.varlen_q.end()));
    s.Sk = std::max(1, *std::max_element(c.varlen_k.begin(), c.varlen_k.end()));
    s.total_q = s.cu_q.back(), s.total_k = s.cu_k.back();
  } else {
    s.B = c.batch, s.Sq = c.seqlen_q, s.Sk = c.seqlen_k;
    s.total_q = int64_t(s.B) * s.Sq, s.total_k = int64_t(s.B) * s.Sk;
  }
  s.seed = case_seed(c);
  s.lq = token_layout(s.varlen, s.B, s.varlen ? s.total_q : s.Sq, c.heads_q, c.head_dim, c.strided);
  s.lk = token_layout(s.varlen, s.B, s.varlen ? s.total_k : s.Sk, c.heads_kv, c.head_dim, c.strided);
  s.lse = s.varlen ? contiguous({c.heads_q, s.total_q}) : contiguous({s.B, c.heads_q, s.Sq});
  s.weights = contiguous({s.B, c.heads_q, s.Sq, s.Sk});
  s.q = random_normal(s.lq.elems, s.seed * 8 + 1, c.dtype);
  s.k = random_normal(s.lk.elems, s.seed * 8 + 2, c.dtype);
  s.v = random_normal(s.lk.elems, s.seed * 8 + 3, c.dtype);
  s.d_o = random_normal(s.lq.elems, s.seed * 8 + 4, c.dtype);
  if (c.bias != BiasKind::none) {
    const int64_t bs[4] = {c.bias_broadcast[0] ? 1 : s.B, c.bias_broadcast[1] ? 1 : c.heads_q,
                           c.bias_broadcast[2] ? 1 : s.Sq, c.bias_broadcast[3] ? 1 : s.Sk};
    s.bias = contiguous({bs[0], bs[1], bs[2], bs[3]});
    s.bias_dtype = c.bias == BiasKind::boolean ? ATTNFORGE_BOOL
                   : c.bias == BiasKind::additive ? c.dtype
                                                  : ATTNFORGE_F32;
    s.bias_values = random_normal(s.bias.elems, s.seed * 8 + 5, s.bias_dtype == ATTNFORGE_BOOL ? ATTNFORGE_F32 : s.bias_dtype);
    // Boolean: visible iff the normal sample > −0.84 (about 80 %).
    if (s.bias_dtype == ATTNFORGE_BOOL)
      for (double& x : s.bias_values) x = x > -0.84 ? 1.0 : 0.0;
    // Fully masked rows: the first masked_rows query rows see no key at all.
    for (int64_t b = 0; b < bs[0]; ++b)
      for (int64_t h = 0; h < bs[1]; ++h)
        for (int64_t i = 0; i < std::min<int64_t>(c.masked_rows, bs[2]); ++i)
          for (int64_t j = 0; j < bs[3]; ++j) {
            double& x = s.bias_values[size_t(b * s.bias.strides[0] + h * s.bias.strides[1] + i * s.bias.strides[2] +
                                             j * s.bias.strides[3])];
            x = s.bias_dtype == ATTNFORGE_BOOL ? 0.0 : -kInf;
          }
  }
  return s;
}

ReferenceProblem reference_problem(const Setup& s, HostTensor bias) {
  ReferenceProblem pr;
  pr.batch = s.B;
  pr.seqlen_q = s.Sq;
  pr.seqlen_k = s.Sk;
  pr.heads_q = s.c.heads_q;
  pr.heads_kv = s.c.heads_kv;
  pr.head_dim = s.c.head_dim;
  pr.cu_seqlens_q = s.varlen ? s.cu_q.data() : nullptr;
  pr.cu_seqlens_k = s.varlen ? s.cu_k.data() : nullptr;
  pr.scale = s.c.scale;
  pr.mask = s.c.mask;
  for (int i = 0; i < 4; ++i) pr.scalars[i] = s.c.scalars[size_t(i)];
  pr.bias = bias;
  pr.bias_is_bool = s.bias_dtype == ATTNFORGE_BOOL;
  return pr;
}

// Device side of a case: inputs uploaded, outputs poisoned, args filled.
struct DeviceCase {
  DeviceBuffer q, k, v, o, lse, weights, cu_q, cu_k, bias, d_o, dq, dk, dv;
  attnforge_args args{};
};

void fill_args(DeviceCase& d, const Setup& s, const RunOptions& opt, bool with_lse, bool with_weights) {
  const Case& c = s.c;
  attnforge_args_init(&d.args);
  d.args.q = device_tensor(d.q, c.dtype, s.lq);
  d.args.k = device_tensor(d.k, c.dtype, s.lk);
  d.args.v = device_tensor(d.v, c.dtype, s.lk);
  d.args.o = device_tensor(d.o, c.dtype, s.lq);
  if (with_lse) d.args.lse = device_tensor(d.lse, ATTNFORGE_F32, s.lse);
  if (with_weights) d.args.weights = device_tensor(d.weights, c.dtype, s.weights);
  if (s.varlen) {
    d.args.cu_seqlens_q = d.cu_q.as<const int32_t>();
    d.args.cu_seqlens_k = d.cu_k.as<const int32_t>();
    d.args.batch_varlen = s.B;
    d.args.max_seqlen_q = s.Sq;
    d.args.max_seqlen_k = s.Sk;
  }
  d.args.scale = c.scale;
  d.args.mask.kind = c.mask.c_str();
  for (int i = 0; i < 4; ++i) d.args.mask.scalars[i] = c.scalars[size_t(i)];
  if (c.bias != BiasKind::none) d.args.mask.bias = device_tensor(d.bias, s.bias_dtype, s.bias);
  d.args.backend = opt.backend;
  d.args.variant = opt.variant;
  d.args.deterministic = opt.deterministic ? 1 : 0;
}

void upload_inputs(DeviceCase& d, const Setup& s) {
  const Case& c = s.c;
  d.q = upload(s.q, c.dtype);
  d.k = upload(s.k, c.dtype);
  d.v = upload(s.v, c.dtype);
  d.d_o = upload(s.d_o, c.dtype);
  d.o = DeviceBuffer(s.lq.elems * dtype_size(c.dtype));
  d.lse = DeviceBuffer(s.lse.elems * sizeof(float));
  if (c.return_weights) d.weights = DeviceBuffer(s.weights.elems * dtype_size(c.dtype));
  if (s.varlen) d.cu_q = upload_int32(s.cu_q), d.cu_k = upload_int32(s.cu_k);
  if (c.bias != BiasKind::none) d.bias = upload(s.bias_values, s.bias_dtype);
}

::testing::AssertionResult call_failed(const char* what, attnforge_status st, const Case& c, uint64_t seed) {
  if (variant_not_built(st)) {
    const std::string msg = attnforge_last_error();
    [&] { GTEST_SKIP() << "variant not built: " << msg << " (case: " << c.describe() << ")"; }();
    return ::testing::AssertionSuccess() << "skipped: " << msg;
  }
  return ::testing::AssertionFailure() << what << " returned " << attnforge_status_string(st) << ": "
                                       << attnforge_last_error() << "\n  case: " << c.describe() << " seed "
                                       << seed;
}

// Points args.workspace at a caller buffer as opt.workspace asks (kept alive in `holder`).
void provide_workspace(attnforge_args& args, int is_backward, const RunOptions& opt, DeviceBuffer& holder) {
  if (opt.workspace == RunOptions::Workspace::library) return;
  size_t bytes = 0;
  if (attnforge_status st = attnforge_workspace_size(&args, is_backward, &bytes); st != ATTNFORGE_OK) {
    if (variant_not_built(st)) return;  // the call is refused the same way and reported as skipped
    throw std::runtime_error(std::string("attnforge_workspace_size failed: ") + attnforge_last_error());
  }
  holder = DeviceBuffer(bytes + 256);
  char* base = holder.as<char>();
  switch (opt.workspace) {
    case RunOptions::Workspace::exact: args.workspace = base, args.workspace_bytes = bytes; break;
    case RunOptions::Workspace::misaligned: args.workspace = base + 1, args.workspace_bytes = bytes; break;
    case RunOptions::Workspace::too_small: args.workspace = base, args.workspace_bytes = bytes / 2; break;
    case RunOptions::Workspace::library: break;
  }
}

void sync(const RunOptions& opt) {
  ATTNFORGE_TEST_CUDA(cudaStreamSynchronize(static_cast<cudaStream_t>(opt.stream)));
}

}  // namespace

std::string Case::describe() const {
  std::ostringstream os;
  os << dtype_name(dtype);
  if (varlen_q.empty()) {
    os << " B" << batch << " Sq" << seqlen_q << " Sk" << seqlen_k;
  } else {
    os << " varlen q{";
    for (size_t i = 0; i < varlen_q.size(); ++i) os << (i ? "," : "") << varlen_q[i];
    os << "} k{";
    for (size_t i = 0; i < varlen_k.size(); ++i) os << (i ? "," : "") << varlen_k[i];
    os << "}";
  }
  os << " Hq" << heads_q << " Hkv" << heads_kv << " D" << head_dim << " " << mask;
  if (mask == "window") os << "(" << scalars[0] << "," << scalars[1] << ")";
  if (bias != BiasKind::none) {
    os << (bias == BiasKind::boolean ? " bool-bias" : bias == BiasKind::additive ? " bias" : " f32-bias");
    if (bias_broadcast[0] || bias_broadcast[1] || bias_broadcast[2] || bias_broadcast[3]) {
      os << "[bcast";
      for (int i = 0; i < 4; ++i) os << (bias_broadcast[size_t(i)] ? "1" : "0");
      os << "]";
    }
  }
  if (masked_rows) os << " masked_rows" << masked_rows;
  if (scale != 0.0f) os << " scale" << scale;
  if (strided) os << " strided";
  if (return_weights) os << " weights";
  if (!pass_lse) os << " no-lse";
  if (!backward) os << " fwd-only";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.describe(); }

bool variant_not_built(attnforge_status st) {
  const std::string msg = attnforge_last_error();
  return st == ATTNFORGE_UNSUPPORTED && msg.find(" has no ") != std::string::npos &&
         (msg.find("built: ") != std::string::npos ||
          msg.find("has no compiled variants in this build") != std::string::npos);
}

::testing::AssertionResult check_case(const Case& c, const RunOptions& opt) {
  try {
    const Setup s = make_setup(c);
    DeviceCase d;
    upload_inputs(d, s);
    std::ostringstream log;
    bool ok = true;

    // ---- forward -------------------------------------------------------------------------------
    fill_args(d, s, opt, c.pass_lse, c.return_weights);
    DeviceBuffer workspace;
    provide_workspace(d.args, 0, opt, workspace);
    if (attnforge_status st = attnforge_forward(&d.args, opt.stream); st != ATTNFORGE_OK)
      return call_failed("attnforge_forward", st, c, s.seed);
    sync(opt);
    const auto o = download(d.o, s.lq.elems, c.dtype);

    std::vector<double> ref_o(s.lq.elems, 0.0), low_o(s.lq.elems, 0.0);
    std::vector<double> ref_lse(s.lse.elems, 0.0), low_lse(s.lse.elems, 0.0);
    std::vector<double> ref_p, low_p;
    std::vector<double> bias_copy = s.bias_values;
    HostTensor bias_t = c.bias != BiasKind::none ? host_tensor(bias_copy, s.bias) : HostTensor{};
    const ReferenceProblem pr = reference_problem(s, bias_t);
    std::vector<double> q = s.q, k = s.k, v = s.v;
    const HostTensor hq = host_tensor(q, s.lq), hk = host_tensor(k, s.lk), hv = host_tensor(v, s.lk);
    HostTensor hp_ref, hp_low;
    if (c.return_weights) {
      ref_p.assign(s.weights.elems, 0.0), low_p.assign(s.weights.elems, 0.0);
      hp_ref = host_tensor(ref_p, s.weights), hp_low = host_tensor(low_p, s.weights);
    }
    reference_forward(pr, hq, hk, hv, host_tensor(ref_o, s.lq), host_tensor(ref_lse, s.lse), hp_ref);
    reference_lowp_forward(c.dtype, pr, hq, hk, hv, host_tensor(low_o, s.lq), host_tensor(low_lse, s.lse), hp_low);

    ok &= rule(log, "O", c.dtype, s.lq, o, ref_o, low_o, opt.forward_factor, opt.abs_tol);
    if (c.pass_lse) {
      const auto lse = download(d.lse, s.lse.elems, ATTNFORGE_F32);
      ok &= rule(log, "LSE", ATTNFORGE_F32, s.lse, lse, ref_lse, low_lse, opt.forward_factor, opt.abs_tol);
    }
    if (c.return_weights) {
      const auto p = download(d.weights, s.weights.elems, c.dtype);
      ok &= rule(log, "P", c.dtype, s.weights, p, ref_p, low_p, opt.forward_factor, opt.abs_tol);
    }

    // ---- backward ------------------------------------------------------------------------------
    if (c.backward) {
      if (!c.pass_lse) {  // the backward needs the forward's LSE: run it again, keeping one
        fill_args(d, s, opt, true, false);
        if (attnforge_status st = attnforge_forward(&d.args, opt.stream); st != ATTNFORGE_OK)
          return call_failed("attnforge_forward (for the LSE)", st, c, s.seed);
      }
      d.dq = DeviceBuffer(s.lq.elems * dtype_size(c.dtype));
      d.dk = DeviceBuffer(s.lk.elems * dtype_size(c.dtype));
      d.dv = DeviceBuffer(s.lk.elems * dtype_size(c.dtype));
      fill_args(d, s, opt, true, false);
      d.args.d_o = device_tensor(d.d_o, c.dtype, s.lq);
      d.args.dq = device_tensor(d.dq, c.dtype, s.lq);
      d.args.dk = device_tensor(d.dk, c.dtype, s.lk);
      d.args.dv = device_tensor(d.dv, c.dtype, s.lk);
      if (opt.backward_variant) d.args.variant = opt.backward_variant;
      sync(opt);  // the forward's buffers (workspace) are free again
      provide_workspace(d.args, 1, opt, workspace);
      if (attnforge_status st = attnforge_backward(&d.args, opt.stream); st != ATTNFORGE_OK)
        return call_failed("attnforge_backward", st, c, s.seed);
      sync(opt);
      const auto dq = download(d.dq, s.lq.elems, c.dtype);
      const auto dk = download(d.dk, s.lk.elems, c.dtype);
      const auto dv = download(d.dv, s.lk.elems, c.dtype);
      std::vector<double> d_o = s.d_o;
      std::vector<double> rq(s.lq.elems, 0.0), rk(s.lk.elems, 0.0), rv(s.lk.elems, 0.0);
      std::vector<double> lq(s.lq.elems, 0.0), lk(s.lk.elems, 0.0), lv(s.lk.elems, 0.0);
      const HostTensor hdo = host_tensor(d_o, s.lq);
      reference_backward(pr, hq, hk, hv, hdo, host_tensor(rq, s.lq), host_tensor(rk, s.lk), host_tensor(rv, s.lk));
      reference_lowp_backward(c.dtype, pr, hq, hk, hv, hdo, host_tensor(lq, s.lq), host_tensor(lk, s.lk),
                              host_tensor(lv, s.lk));
      ok &= rule(log, "dQ", c.dtype, s.lq, dq, rq, lq, opt.gradient_factor, opt.abs_tol);
      ok &= rule(log, "dK", c.dtype, s.lk, dk, rk, lk, opt.gradient_factor, opt.abs_tol);
      ok &= rule(log, "dV", c.dtype, s.lk, dv, rv, lv, opt.gradient_factor, opt.abs_tol);
    }

    char variant[160] = {}, reason[512] = {};
    attnforge_backend chosen = ATTNFORGE_BACKEND_AUTO;
    fill_args(d, s, opt, c.pass_lse, c.return_weights);
    (void)attnforge_select_backend(&d.args, 0, &chosen, variant, sizeof variant, reason, sizeof reason);
    const std::string head = "case: " + c.describe() + " seed " + std::to_string(s.seed) + " variant " + variant + "\n";
    if (ok) return ::testing::AssertionSuccess() << head << log.str();
    return ::testing::AssertionFailure() << head << log.str();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "case " << c.describe() << ": " << e.what();
  }
}

::testing::AssertionResult check_case_fails(const Case& c, const RunOptions& opt, attnforge_status status,
                                            const std::string& message_part) {
  try {
    const Setup s = make_setup(c);
    DeviceCase d;
    upload_inputs(d, s);
    fill_args(d, s, opt, c.pass_lse, c.return_weights);
    attnforge_status st = ATTNFORGE_OK;
    if (c.backward) {
      d.dq = DeviceBuffer(s.lq.elems * dtype_size(c.dtype));
      d.dk = DeviceBuffer(s.lk.elems * dtype_size(c.dtype));
      d.dv = DeviceBuffer(s.lk.elems * dtype_size(c.dtype));
      fill_args(d, s, opt, true, false);
      d.args.d_o = device_tensor(d.d_o, c.dtype, s.lq);
      d.args.dq = device_tensor(d.dq, c.dtype, s.lq);
      d.args.dk = device_tensor(d.dk, c.dtype, s.lk);
      d.args.dv = device_tensor(d.dv, c.dtype, s.lk);
      st = attnforge_backward(&d.args, opt.stream);
    } else {
      st = attnforge_forward(&d.args, opt.stream);
    }
    const std::string msg = attnforge_last_error();
    if (st == status && msg.find(message_part) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "expected " << attnforge_status_string(status) << " with \""
                                         << message_part << "\", got " << attnforge_status_string(st) << ": \"" << msg
                                         << "\"\n  case: " << c.describe();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "case " << c.describe() << ": " << e.what();
  }
}

std::vector<Case> odd_shape_cases(attnforge_dtype dtype, int head_dim, const std::string& mask, bool big) {
  std::vector<std::pair<int, int>> lengths = {{1, 1},     {3, 3},   {113, 113}, {113, 203},
                                              {203, 113}, {1, 203}, {203, 1},   {3, 113}};
  if (big) lengths.insert(lengths.end(), {{1023, 1024}, {1024, 1024}, {1024, 1023}});
  std::vector<Case> cases;
  for (size_t i = 0; i < lengths.size(); ++i) {
    Case c;
    c.dtype = dtype;
    c.head_dim = head_dim;
    c.mask = mask;
    c.seqlen_q = lengths[i].first;
    c.seqlen_k = lengths[i].second;
    const bool large = c.seqlen_q * c.seqlen_k > 200000;
    c.batch = large ? 1 : 2;
    c.heads_q = i % 2 ? 4 : 2;  // alternate MHA and GQA
    c.heads_kv = 2;
    if (mask == "window") c.scalars = {17, 3, -1, -1};
    if (mask == "bias") c.bias = i % 3 == 2 ? BiasKind::boolean : BiasKind::additive;
    cases.push_back(c);
  }
  return cases;
}

}  // namespace attnforge::test
