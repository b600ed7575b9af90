// CPU reference attention (reference.hpp): one templated implementation serves both the exact
// fp64 reference (Acc = double, no rounding) and the low-precision emulation (Acc = float,
// every GEMM result and P rounded to the dtype). Rows (and key columns) of each block run in parallel.
#include "attnforge/reference.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

#include "variant_key.hpp"

namespace attnforge {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// How one implementation rounds: exact (identity) or to a dtype.
struct Rounding {
  bool exact;
  attnforge_dtype dtype;
  double operator()(double x) const { return exact ? x : round_to_dtype(dtype, x); }
};

struct Context {
  const ReferenceProblem& pr;
  bool varlen;
  int mask_id;
  bool has_tensor;
  MaskScalars scalars;
  double scale;
  int group;

  // Where sequence b lives: first token rows and lengths.
  void seq(int b, int64_t& q0, int64_t& k0, int& sq, int& sk) const {
    if (varlen) {
      q0 = pr.cu_seqlens_q[b], k0 = pr.cu_seqlens_k[b];
      sq = int(pr.cu_seqlens_q[b + 1] - q0), sk = int(pr.cu_seqlens_k[b + 1] - k0);
    } else {
      q0 = k0 = 0, sq = pr.seqlen_q, sk = pr.seqlen_k;
    }
  }
  // Element offset of token `row` (absolute in varlen, within the batch entry in dense), head h, dim d.
  int64_t tok(const HostTensor& t, int b, int64_t row, int h, int d) const {
    if (varlen) return row * t.strides[0] + h * t.strides[1] + d * t.strides[2];
    return b * t.strides[0] + row * t.strides[1] + h * t.strides[2] + d * t.strides[3];
  }
  int64_t lse_at(const HostTensor& t, int b, int h, int64_t row) const {
    if (varlen) return h * t.strides[0] + row * t.strides[1];  // (Hq, total_q)
    return b * t.strides[0] + h * t.strides[1] + row * t.strides[2];  // (B, Hq, Sq)
  }
  double bias(int b, int h, int i, int j) const {
    const HostTensor& t = pr.bias;
    auto s = [&](int dim, int64_t idx) { return t.sizes[dim] == 1 ? 0 : idx * t.strides[dim]; };
    return t.data[s(0, b) + s(1, h) + s(2, i) + s(3, j)];
  }
};

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("attnforge reference: " + what);
}

Context make_context(const ReferenceProblem& pr, const HostTensor& q, const HostTensor& k, const HostTensor& v) {
  const bool varlen = pr.cu_seqlens_q != nullptr;
  require((pr.cu_seqlens_k != nullptr) == varlen, "cu_seqlens_q and cu_seqlens_k must be both set or both null");
  const int rank = varlen ? 3 : 4;
  require(q.data && k.data && v.data, "q, k and v are required");
  require(q.rank == rank && k.rank == rank && v.rank == rank,
          "q, k, v must have rank " + std::to_string(rank) + (varlen ? " (varlen)" : " (dense)"));
  require(pr.heads_kv > 0 && pr.heads_q % pr.heads_kv == 0, "heads_q must be a multiple of heads_kv");
  require(pr.head_dim > 0 && pr.batch > 0, "batch and head_dim must be positive");
  const int mask_id = mask_id_by_name(pr.mask);
  require(mask_id >= 0, "unknown mask kind '" + pr.mask + "'");
  const bool has_tensor = mask_has_tensor(mask_id);
  require(!has_tensor || (pr.bias.data && pr.bias.rank == 4), "mask kind '" + pr.mask + "' needs a rank-4 bias");
  Context c{pr, varlen, mask_id, has_tensor, {}, 0.0, pr.heads_q / pr.heads_kv};
  for (int i = 0; i < ATTNFORGE_MAX_MASK_SCALARS; ++i) c.scalars.v[i] = int(pr.scalars[i]);
  c.scale = (pr.scale == 0.0 || std::isnan(pr.scale)) ? 1.0 / std::sqrt(double(pr.head_dim)) : pr.scale;
  return c;
}

// Runs f(i) for i in [0, n) on the machine's cores when the work is big enough to pay for threads
// (each i writes its own outputs). Blocks of (sequence, head) run one after another; their rows
// (or key columns) run in parallel.
template <class F>
void parallel_for(int n, double work_per_item, F&& f) {
  static const int cores = std::max(1, int(std::thread::hardware_concurrency()));
  const int threads = std::min(cores, int(std::min<double>(n, n * work_per_item / 32768.0)));
  if (threads <= 1) {
    for (int i = 0; i < n; ++i) f(i);
    return;
  }
  std::atomic<int> next{0};
  auto work = [&] {
    for (int i = next++; i < n; i = next++) f(i);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

// Row i of P (sk) and its LSE for head h of sequence b, from Q (sq × D) and K (sk × D) of that block.
// S = Q·Kᵀ (rounded), ·scale (rounded), + additive bias (rounded); masked ⇒ −inf; P = softmax(S)
// computed in Acc and rounded; a row with every key masked gets P = 0 and LSE = −inf.
template <class Acc>
double probability_row(const Context& c, const Rounding& r, int b, int h, int i, int sq, int sk,
                       const std::vector<Acc>& Q, const std::vector<Acc>& K, double* P) {
  const int D = c.pr.head_dim;
  double m = kNegInf;
  for (int j = 0; j < sk; ++j) {
    bool visible = mask_visible(c.mask_id, i, j, sq, sk, c.scalars);
    double add = 0.0;
    if (visible && c.has_tensor) {
      const double bv = c.bias(b, h, i, j);
      if (c.pr.bias_is_bool) visible = bv != 0.0;
      else add = bv;
    }
    double x = kNegInf;
    if (visible) {
      Acc dot = 0;
      for (int d = 0; d < D; ++d) dot += Q[size_t(i) * D + d] * K[size_t(j) * D + d];
      x = r(r(double(dot)) * c.scale);
      if (c.has_tensor && !c.pr.bias_is_bool) x = r(x + add);
      if (std::isnan(x)) x = kNegInf;  // −inf bias on top of a finite score stays masked
    }
    P[j] = x;  // the scores, for now
    m = std::max(m, x);
  }
  if (m == kNegInf) {  // fully masked row: P = 0, LSE = −inf
    std::fill(P, P + sk, 0.0);
    return kNegInf;
  }
  Acc l = 0;
  for (int j = 0; j < sk; ++j) l += Acc(std::exp(Acc(P[j] - m)));
  for (int j = 0; j < sk; ++j) P[j] = r(double(Acc(std::exp(Acc(P[j] - m))) / l));
  return double(Acc(m) + Acc(std::log(l)));
}

// Copies head h of one sequence's token block (rows × D) into a contiguous Acc buffer.
template <class Acc>
void gather(const Context& c, const HostTensor& t, int b, int64_t start, int rows, int h, std::vector<Acc>& out) {
  const int D = c.pr.head_dim;
  out.resize(size_t(rows) * D);
  for (int i = 0; i < rows; ++i)
    for (int d = 0; d < D; ++d) out[size_t(i) * D + d] = Acc(t.data[c.tok(t, b, start + i, h, d)]);
}

template <class Acc>
void forward_impl(const Rounding& r, const ReferenceProblem& pr, const HostTensor& q, const HostTensor& k,
                  const HostTensor& v, const HostTensor& o, const HostTensor& lse_out, const HostTensor& p_out) {
  const Context c = make_context(pr, q, k, v);
  require(o.data != nullptr && o.rank == q.rank, "o is required and must be shaped like q");
  require(!p_out.data || !c.varlen, "P is not available with varlen");
  const int D = pr.head_dim;
  std::vector<Acc> Q, K, V;
  for (int b = 0; b < pr.batch; ++b) {
    int64_t q0, k0;
    int sq, sk;
    c.seq(b, q0, k0, sq, sk);
    for (int h = 0; h < pr.heads_q; ++h) {
      const int kvh = h / c.group;
      gather(c, k, b, k0, sk, kvh, K);
      gather(c, v, b, k0, sk, kvh, V);
      gather(c, q, b, q0, sq, h, Q);
      parallel_for(sq, double(sk) * D * 2, [&](int i) {
        std::vector<double> P(static_cast<size_t>(sk));
        const double lse = probability_row<Acc>(c, r, b, h, i, sq, sk, Q, K, P.data());
        // O = P·V (a fully masked row has P = 0, hence O = 0 exactly); sums over j in order
        std::vector<Acc> acc(size_t(D), Acc(0));
        for (int j = 0; j < sk; ++j) {
          const Acc pj = Acc(P[size_t(j)]);
          for (int d = 0; d < D; ++d) acc[size_t(d)] += pj * V[size_t(j) * D + d];
        }
        for (int d = 0; d < D; ++d) o.data[c.tok(o, b, q0 + i, h, d)] = r(double(acc[size_t(d)]));
        if (lse_out.data) lse_out.data[c.lse_at(lse_out, b, h, q0 + i)] = lse;
        if (p_out.data) {
          for (int j = 0; j < pr.seqlen_k; ++j) {
            const double pv = j < sk ? P[size_t(j)] : 0.0;
            p_out.data[b * p_out.strides[0] + h * p_out.strides[1] + i * p_out.strides[2] + j * p_out.strides[3]] = pv;
          }
        }
      });
    }
  }
}

template <class Acc>
void backward_impl(const Rounding& r, const ReferenceProblem& pr, const HostTensor& q, const HostTensor& k,
                   const HostTensor& v, const HostTensor& d_o, const HostTensor& dq, const HostTensor& dk,
                   const HostTensor& dv) {
  const Context c = make_context(pr, q, k, v);
  require(d_o.data && dq.data && dk.data && dv.data, "d_o, dq, dk and dv are required");
  const int D = pr.head_dim;
  std::vector<Acc> Q, K, V, dO;
  std::vector<double> P, dS;
  for (int b = 0; b < pr.batch; ++b) {
    int64_t q0, k0;
    int sq, sk;
    c.seq(b, q0, k0, sq, sk);
    for (int kvh = 0; kvh < pr.heads_kv; ++kvh) {
      gather(c, k, b, k0, sk, kvh, K);
      gather(c, v, b, k0, sk, kvh, V);
      std::vector<Acc> dK(size_t(sk) * D, Acc(0)), dV(size_t(sk) * D, Acc(0));  // summed over the group
      for (int h = kvh * c.group; h < (kvh + 1) * c.group; ++h) {
        gather(c, q, b, q0, sq, h, Q);
        gather(c, d_o, b, q0, sq, h, dO);
        P.assign(size_t(sq) * sk, 0.0);
        dS.assign(size_t(sq) * sk, 0.0);
        // Rows: P, dP = dO·Vᵀ (rounded), Di = Σ_j P_ij·dP_ij (= rowsum(dO ∘ O)),
        // dS = P ∘ (dP − Di) ·scale, dQ = dS·K.
        parallel_for(sq, double(sk) * D * 4, [&](int i) {
          double* Pi = &P[size_t(i) * sk];
          double* dSi = &dS[size_t(i) * sk];
          (void)probability_row<Acc>(c, r, b, h, i, sq, sk, Q, K, Pi);
          Acc Di = 0;
          for (int j = 0; j < sk; ++j) {
            Acc acc = 0;
            for (int d = 0; d < D; ++d) acc += dO[size_t(i) * D + d] * V[size_t(j) * D + d];
            dSi[j] = r(double(acc));  // dP, for now
            Di += Acc(Pi[j]) * Acc(dSi[j]);
          }
          for (int j = 0; j < sk; ++j) dSi[j] = r(r(double(Acc(Pi[j]) * (Acc(dSi[j]) - Di))) * c.scale);
          std::vector<Acc> acc(size_t(D), Acc(0));
          for (int j = 0; j < sk; ++j) {
            const Acc a = Acc(dSi[j]);
            for (int d = 0; d < D; ++d) acc[size_t(d)] += a * K[size_t(j) * D + d];
          }
          for (int d = 0; d < D; ++d) dq.data[c.tok(dq, b, q0 + i, h, d)] = r(double(acc[size_t(d)]));
        });
        // Key columns: dK += dSᵀ·Q, dV += Pᵀ·dO (this head's share of the kv head).
        parallel_for(sk, double(sq) * D * 2, [&](int j) {
          std::vector<Acc> ak(size_t(D), Acc(0)), av(size_t(D), Acc(0));  // sums over i in order
          for (int i = 0; i < sq; ++i) {
            const Acc s_ij = Acc(dS[size_t(i) * sk + j]), p_ij = Acc(P[size_t(i) * sk + j]);
            for (int d = 0; d < D; ++d) {
              ak[size_t(d)] += s_ij * Q[size_t(i) * D + d];
              av[size_t(d)] += p_ij * dO[size_t(i) * D + d];
            }
          }
          for (int d = 0; d < D; ++d) dK[size_t(j) * D + d] += ak[size_t(d)], dV[size_t(j) * D + d] += av[size_t(d)];
        });
      }
      for (int j = 0; j < sk; ++j) {
        for (int d = 0; d < D; ++d) {
          dk.data[c.tok(dk, b, k0 + j, kvh, d)] = r(double(dK[size_t(j) * D + d]));
          dv.data[c.tok(dv, b, k0 + j, kvh, d)] = r(double(dV[size_t(j) * D + d]));
        }
      }
    }
  }
}

// A double copy of a float view, with the same strides (so every layout rule carries over).
struct Widened {
  std::vector<double> buffer;
  HostTensor view;
  const HostTensorF* source = nullptr;
  explicit Widened(const HostTensorF& t) : source(&t) {
    if (t.data == nullptr) return;
    int64_t extent = 1;
    for (int i = 0; i < t.rank; ++i) extent += (t.sizes[i] - 1) * t.strides[i];
    buffer.assign(size_t(std::max<int64_t>(extent, 1)), 0.0);
    view.data = buffer.data();
    view.rank = t.rank;
    for (int i = 0; i < t.rank; ++i) view.sizes[i] = t.sizes[i], view.strides[i] = t.strides[i];
    for_each_offset([&](int64_t off) { buffer[size_t(off)] = t.data[off]; });
  }
  template <class F>
  void for_each_offset(F&& f) const {
    const HostTensorF& t = *source;
    int64_t n = 1;
    for (int i = 0; i < t.rank; ++i) n *= t.sizes[i];
    int64_t idx[4] = {0, 0, 0, 0};
    for (int64_t e = 0; e < n; ++e) {
      int64_t off = 0;
      for (int i = 0; i < t.rank; ++i) off += idx[i] * t.strides[i];
      f(off);
      for (int i = t.rank - 1; i >= 0; --i) {
        if (++idx[i] < t.sizes[i]) break;
        idx[i] = 0;
      }
    }
  }
  void write_back() const {  // results → the float tensor
    if (source->data == nullptr) return;
    for_each_offset([&](int64_t off) { source->data[off] = float(buffer[size_t(off)]); });
  }
};

}  // namespace

ATTNFORGE_API void reference_forward(const ReferenceProblem& pr, const HostTensorF& q, const HostTensorF& k,
                                     const HostTensorF& v, const HostTensorF& o, const HostTensorF& lse,
                                     const HostTensorF& p) {
  const Widened wq(q), wk(k), wv(v), wo(o), wl(lse), wp(p);
  forward_impl<double>(Rounding{true, ATTNFORGE_F32}, pr, wq.view, wk.view, wv.view, wo.view, wl.view, wp.view);
  wo.write_back(), wl.write_back(), wp.write_back();
}

ATTNFORGE_API void reference_backward(const ReferenceProblem& pr, const HostTensorF& q, const HostTensorF& k,
                                      const HostTensorF& v, const HostTensorF& d_o, const HostTensorF& dq,
                                      const HostTensorF& dk, const HostTensorF& dv) {
  const Widened wq(q), wk(k), wv(v), wdo(d_o), wdq(dq), wdk(dk), wdv(dv);
  backward_impl<double>(Rounding{true, ATTNFORGE_F32}, pr, wq.view, wk.view, wv.view, wdo.view, wdq.view, wdk.view,
                        wdv.view);
  wdq.write_back(), wdk.write_back(), wdv.write_back();
}

ATTNFORGE_API void reference_forward(const ReferenceProblem& pr, const HostTensor& q, const HostTensor& k,
                                     const HostTensor& v, const HostTensor& o, const HostTensor& lse,
                                     const HostTensor& p) {
  forward_impl<double>(Rounding{true, ATTNFORGE_F32}, pr, q, k, v, o, lse, p);
}

ATTNFORGE_API void reference_backward(const ReferenceProblem& pr, const HostTensor& q, const HostTensor& k,
                                      const HostTensor& v, const HostTensor& d_o, const HostTensor& dq,
                                      const HostTensor& dk, const HostTensor& dv) {
  backward_impl<double>(Rounding{true, ATTNFORGE_F32}, pr, q, k, v, d_o, dq, dk, dv);
}

ATTNFORGE_API void reference_lowp_forward(attnforge_dtype dtype, const ReferenceProblem& pr, const HostTensor& q,
                                          const HostTensor& k, const HostTensor& v, const HostTensor& o,
                                          const HostTensor& lse, const HostTensor& p) {
  forward_impl<float>(Rounding{false, dtype}, pr, q, k, v, o, lse, p);
}

ATTNFORGE_API void reference_lowp_backward(attnforge_dtype dtype, const ReferenceProblem& pr, const HostTensor& q,
                                           const HostTensor& k, const HostTensor& v, const HostTensor& d_o,
                                           const HostTensor& dq, const HostTensor& dk, const HostTensor& dv) {
  backward_impl<float>(Rounding{false, dtype}, pr, q, k, v, d_o, dq, dk, dv);
}

}  // namespace attnforge
