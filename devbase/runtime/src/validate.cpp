// Validation of attnforge_args (every argument, before any launch) and the Params builder.
// Messages follow PyTorch's style: they name the argument and the values that were seen.
#include "validate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

namespace attnforge {

namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int kMaxHeadDim = 1024;

// Internal: the first violated rule ends validation with its message.
struct Invalid {
  attnforge_status status;
  std::string message;
};
[[noreturn]] void fail(std::string message, attnforge_status status = ATTNFORGE_INVALID_ARGUMENT) {
  throw Invalid{status, std::move(message)};
}

std::string join(const int64_t* v, int n) {
  std::string s = "(";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (n == 1 ? ",)" : ")");
}
std::string sizes_of(const attnforge_tensor& t) { return join(t.sizes, t.rank); }
std::string strides_of(const attnforge_tensor& t) { return join(t.strides, t.rank); }

bool present(const attnforge_tensor& t) { return t.data != nullptr; }

// a·b, saturated at INT64_MAX (sizes are positive here), so that limit checks never overflow.
int64_t sat_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}

void require_present(const attnforge_tensor& t, const char* name, const char* why) {
  if (!present(t)) fail(std::string("expected ") + name + " to be a device pointer (" + why + "), got " + name + ".data = NULL");
}

// A C caller may store any int in an enum field: read it as an int (loading an out-of-range enum
// value is undefined in C++), and only convert back once it is known to be valid.
template <class E>
int raw(const E& e) {
  static_assert(sizeof(E) == sizeof(int), "attnforge enums are int-sized");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}
int dt(const attnforge_tensor& t) { return raw(t.dtype); }

bool is_float_dtype(int t) { return t == ATTNFORGE_F32 || t == ATTNFORGE_F16 || t == ATTNFORGE_BF16; }

// Rank, dtype, positive sizes, non-negative strides, unit stride in the last dim, and element
// offsets that fit int64. `layout` names the dims for the rank message, e.g. "(B, Sq, Hq, D)".
void check_tensor(const attnforge_tensor& t, const char* name, int rank, const char* layout, bool varlen) {
  if (t.rank != rank) {
    fail(std::string("expected ") + name + " to have rank " + std::to_string(rank) + " " + layout +
         (varlen ? " with cu_seqlens" : "") + ", got rank " + std::to_string(t.rank));
  }
  for (int i = 0; i < rank; ++i) {
    if (t.sizes[i] <= 0) fail(std::string("expected ") + name + " to have positive sizes, got " + sizes_of(t));
  }
  for (int i = 0; i < rank; ++i) {
    if (t.strides[i] < 0) fail(std::string("expected ") + name + " to have non-negative strides, got " + strides_of(t));
  }
  if (t.sizes[rank - 1] > 1 && t.strides[rank - 1] != 1) {
    fail(std::string("expected ") + name + " to be contiguous in its last dimension (stride 1), got strides " +
         strides_of(t));
  }
  // Largest element offset Σ (size_i − 1)·stride_i must fit int64 (kernels form it in int64).
  int64_t offset = 0;
  for (int i = 0; i < rank; ++i) {
    int64_t term = 0;
    if (__builtin_mul_overflow(t.sizes[i] - 1, t.strides[i], &term) || __builtin_add_overflow(offset, term, &offset)) {
      fail(std::string(name) + " is too large: its element offsets overflow int64 (sizes " + sizes_of(t) +
           ", strides " + strides_of(t) + ")");
    }
  }
}

void check_float_dtype(const attnforge_tensor& t, const char* name) {
  if (!is_float_dtype(dt(t)))
    fail(std::string("expected ") + name + " to have dtype f32, f16 or bf16, got " + dtype_string(dt(t)));
}

void check_same_dtype(const attnforge_tensor& a, const char* an, const attnforge_tensor& b, const char* bn) {
  if (dt(a) != dt(b)) {
    fail(std::string("expected ") + an + " and " + bn + " to have the same dtype, got " + dtype_string(dt(a)) +
         " and " + dtype_string(dt(b)));
  }
}

void check_same_shape(const attnforge_tensor& a, const char* an, const attnforge_tensor& b, const char* bn) {
  for (int i = 0; i < a.rank; ++i) {
    if (a.sizes[i] != b.sizes[i]) {
      fail(std::string("expected ") + an + " and " + bn + " to have the same shape, got " + sizes_of(a) + " and " +
           sizes_of(b));
    }
  }
}

void check_fits_int32(int64_t value, const std::string& what) {
  if (value > kInt32Max) {
    fail("expected " + what + " to be at most 2147483647 (kernels index it with int32), got " + std::to_string(value));
  }
}

// Kernels round a sequence length up to whole tiles in int: lengths stay ≤ kMaxSeqlen (params.hpp).
void check_seqlen(int64_t value, const std::string& what) {
  if (value > kMaxSeqlen) {
    fail("expected " + what + " to be at most " + std::to_string(kMaxSeqlen) +
         " (kernels round it up to whole tiles in int32), got " + std::to_string(value));
  }
}

// The (B, Hq, Sq) / (Hq, total_q) LSE, fp32, unit stride along the query dim.
void check_lse(const attnforge_tensor& lse, bool varlen, int64_t B, int64_t Hq, int64_t Sq, int64_t total_q) {
  if (dt(lse) != ATTNFORGE_F32) fail(std::string("expected lse to have dtype f32, got ") + dtype_string(dt(lse)));
  if (varlen) {
    check_tensor(lse, "lse", 2, "(Hq, total_q)", true);
    if (lse.sizes[0] != Hq || lse.sizes[1] != total_q) {
      fail("expected lse to have shape (Hq, total_q) = (" + std::to_string(Hq) + ", " + std::to_string(total_q) +
           "), got " + sizes_of(lse));
    }
  } else {
    check_tensor(lse, "lse", 3, "(B, Hq, Sq)", false);
    if (lse.sizes[0] != B || lse.sizes[1] != Hq || lse.sizes[2] != Sq) {
      fail("expected lse to have shape (B, Hq, Sq) = (" + std::to_string(B) + ", " + std::to_string(Hq) + ", " +
           std::to_string(Sq) + "), got " + sizes_of(lse));
    }
  }
}

}  // namespace

ATTNFORGE_API const char* dtype_string(int t) {
  switch (t) {
    case ATTNFORGE_F32: return "f32";
    case ATTNFORGE_F16: return "f16";
    case ATTNFORGE_BF16: return "bf16";
    case ATTNFORGE_BOOL: return "bool";
  }
  static thread_local char buf[32];
  std::snprintf(buf, sizeof buf, "dtype(%d)", int(t));
  return buf;
}

ATTNFORGE_API size_t temporary_lse_bytes(const Params& p) {
  const int64_t rows = p.is_varlen() ? p.total_q : int64_t(p.batch) * p.seqlen_q;
  return size_t(rows) * size_t(p.heads_q) * sizeof(float);
}

ATTNFORGE_API void use_temporary_lse(Params& p, float* lse) {
  p.lse = lse;
  if (p.is_varlen()) {  // (Hq, total_q)
    p.lse_batch_stride = 0;
    p.lse_head_stride = p.total_q;
  } else {  // (B, Hq, Sq)
    p.lse_head_stride = p.seqlen_q;
    p.lse_batch_stride = int64_t(p.heads_q) * p.seqlen_q;
  }
}

ATTNFORGE_API attnforge_status validate_args(const attnforge_args& a, Direction dir, ValidatedCall& out, std::string& error) {
  try {
    const bool bwd = dir == Direction::bwd;
    Params p{};
    // ---- the backend choice (an int from C) --------------------------------------------------
    const int backend = raw(a.backend);
    if (backend < ATTNFORGE_BACKEND_AUTO || backend > ATTNFORGE_BACKEND_FLASH)
      fail("expected backend to be one of AUTO, UNFUSED, FUSED, FLASH, got " + std::to_string(backend));

    // ---- required pointers ------------------------------------------------------------------
    require_present(a.q, "q", "the queries");
    require_present(a.k, "k", "the keys");
    require_present(a.v, "v", "the values");
    require_present(a.o, "o", bwd ? "the forward output" : "the output");
    if (bwd) {
      require_present(a.lse, "lse", "the forward's log-sum-exp");
      require_present(a.d_o, "d_o", "the output gradient");
      require_present(a.dq, "dq", "the query gradient");
      require_present(a.dk, "dk", "the key gradient");
      require_present(a.dv, "dv", "the value gradient");
    }

    // ---- dense or varlen --------------------------------------------------------------------
    if ((a.cu_seqlens_q == nullptr) != (a.cu_seqlens_k == nullptr)) {
      fail(std::string("expected cu_seqlens_q and cu_seqlens_k to be both set or both NULL, got cu_seqlens_q ") +
           (a.cu_seqlens_q ? "set" : "NULL") + " and cu_seqlens_k " + (a.cu_seqlens_k ? "set" : "NULL"));
    }
    const bool varlen = a.cu_seqlens_q != nullptr;
    if (varlen) {
      if (a.batch_varlen <= 0)
        fail("expected batch_varlen > 0 with cu_seqlens, got " + std::to_string(a.batch_varlen));
      if (a.max_seqlen_q <= 0)
        fail("expected max_seqlen_q > 0 with cu_seqlens, got " + std::to_string(a.max_seqlen_q));
      if (a.max_seqlen_k <= 0)
        fail("expected max_seqlen_k > 0 with cu_seqlens, got " + std::to_string(a.max_seqlen_k));
    }

    // ---- ranks, dtypes, strides -------------------------------------------------------------
    const int rank = varlen ? 3 : 4;
    const char* q_layout = varlen ? "(total_q, Hq, D)" : "(B, Sq, Hq, D)";
    const char* k_layout = varlen ? "(total_k, Hkv, D)" : "(B, Sk, Hkv, D)";
    check_float_dtype(a.q, "q");
    check_same_dtype(a.q, "q", a.k, "k");
    check_same_dtype(a.q, "q", a.v, "v");
    check_same_dtype(a.q, "q", a.o, "o");
    if (bwd) {
      check_same_dtype(a.q, "q", a.d_o, "d_o");
      check_same_dtype(a.q, "q", a.dq, "dq");
      check_same_dtype(a.q, "q", a.dk, "dk");
      check_same_dtype(a.q, "q", a.dv, "dv");
    }
    check_tensor(a.q, "q", rank, q_layout, varlen);
    check_tensor(a.k, "k", rank, k_layout, varlen);
    check_tensor(a.v, "v", rank, k_layout, varlen);
    check_tensor(a.o, "o", rank, q_layout, varlen);
    if (bwd) {
      check_tensor(a.d_o, "d_o", rank, q_layout, varlen);
      check_tensor(a.dq, "dq", rank, q_layout, varlen);
      check_tensor(a.dk, "dk", rank, k_layout, varlen);
      check_tensor(a.dv, "dv", rank, k_layout, varlen);
    }

    // ---- shapes -----------------------------------------------------------------------------
    // Dense: q (B, Sq, Hq, D), k/v (B, Sk, Hkv, D). Varlen: q (total_q, Hq, D), k/v (total_k, Hkv, D).
    const int h = varlen ? 1 : 2;  // index of the heads dim
    const int64_t D = a.q.sizes[h + 1];
    const int64_t Hq = a.q.sizes[h], Hkv = a.k.sizes[h];
    const int64_t B = varlen ? a.batch_varlen : a.q.sizes[0];
    // Varlen: no sequence is longer than all tokens, so a looser max_seqlen bound is clamped to the
    // token count (kernels launch one tile row per max_seqlen; the extra ones would exit at once).
    const int64_t Sq = varlen ? std::min<int64_t>(a.max_seqlen_q, a.q.sizes[0]) : a.q.sizes[1];
    const int64_t Sk = varlen ? std::min<int64_t>(a.max_seqlen_k, a.k.sizes[0]) : a.k.sizes[1];
    const int64_t total_q = varlen ? a.q.sizes[0] : sat_mul(B, Sq);
    const int64_t total_k = varlen ? a.k.sizes[0] : sat_mul(B, Sk);
    if (!varlen && a.k.sizes[0] != B) {
      fail("expected q and k to have the same batch size, got " + std::to_string(B) + " and " +
           std::to_string(a.k.sizes[0]));
    }
    if (a.k.sizes[h + 1] != D) {
      fail("expected q and k to have the same head_dim, got " + std::to_string(D) + " and " +
           std::to_string(a.k.sizes[h + 1]));
    }
    check_same_shape(a.k, "k", a.v, "v");
    check_same_shape(a.q, "q", a.o, "o");
    if (bwd) {
      check_same_shape(a.o, "o", a.d_o, "d_o");
      check_same_shape(a.q, "q", a.dq, "dq");
      check_same_shape(a.k, "k", a.dk, "dk");
      check_same_shape(a.v, "v", a.dv, "dv");
    }
    if (D < 1 || D > kMaxHeadDim) fail("expected head_dim in [1, 1024], got " + std::to_string(D));
    if (Hq % Hkv != 0) {
      fail("expected the number of query heads to be a multiple of the number of key/value heads, got Hq = " +
           std::to_string(Hq) + " and Hkv = " + std::to_string(Hkv));
    }
    // Kernels keep sizes, token rows and heads in int.
    check_fits_int32(B, varlen ? "batch_varlen" : "the batch size B");
    check_seqlen(Sq, varlen ? "max_seqlen_q" : "Sq");
    check_seqlen(Sk, varlen ? "max_seqlen_k" : "Sk");
    check_fits_int32(Hq, "Hq");
    check_fits_int32(total_q, varlen ? "total_q" : "the number of query rows B*Sq");
    check_fits_int32(total_k, varlen ? "total_k" : "the number of key rows B*Sk");
    check_fits_int32(sat_mul(B, Hq), "B*Hq");

    // ---- lse ------------------------------------------------------------------------------------
    const bool has_lse = present(a.lse);
    if (has_lse) check_lse(a.lse, varlen, B, Hq, Sq, total_q);

    // ---- weights (forward only: P, contiguous (B, Hq, Sq, Sk), dtype of q) ---------------------
    const bool wants_weights = !bwd && present(a.weights);
    if (wants_weights) {
      if (varlen) fail("returning the attention weights is not supported with cu_seqlens (varlen)", ATTNFORGE_UNSUPPORTED);
      check_same_dtype(a.q, "q", a.weights, "weights");
      check_tensor(a.weights, "weights", 4, "(B, Hq, Sq, Sk)", false);
      const int64_t want[4] = {B, Hq, Sq, Sk};
      const int64_t contiguous[4] = {sat_mul(Hq, sat_mul(Sq, Sk)), sat_mul(Sq, Sk), Sk, 1};
      for (int i = 0; i < 4; ++i) {
        if (a.weights.sizes[i] != want[i])
          fail("expected weights to have shape (B, Hq, Sq, Sk) = " + join(want, 4) + ", got " + sizes_of(a.weights));
      }
      for (int i = 0; i < 4; ++i) {
        if (a.weights.strides[i] != contiguous[i] && want[i] > 1)
          fail("expected weights to be contiguous with strides " + join(contiguous, 4) + ", got " +
               strides_of(a.weights));
      }
    }

    // ---- mask -----------------------------------------------------------------------------------
    const char* kind = a.mask.kind ? a.mask.kind : "none";
    const int mask_id = mask_id_by_name(kind);
    if (mask_id < 0) {
      std::string known;
      for (int i = 0; i < mask_count(); ++i) known += (i ? ", " : "") + std::string(mask_name(i));
      fail(std::string("unknown mask kind '") + kind + "'; this build knows: " + known);
    }
    const int nscalars = mask_num_scalars(mask_id);
    for (int i = 0; i < kMaxMaskScalars; ++i) {
      const int64_t s = a.mask.scalars[i];
      if (i < nscalars && (s > kInt32Max || s < std::numeric_limits<int32_t>::min())) {
        fail("expected mask.scalars[" + std::to_string(i) + "] of mask kind '" + kind + "' to fit in int32, got " +
             std::to_string(s));
      }
      p.mask.v[i] = i < nscalars ? int(s) : 0;
    }
    const attnforge_tensor& bias = a.mask.bias;
    if (mask_has_tensor(mask_id)) {
      if (!present(bias))
        fail(std::string("mask kind '") + kind + "' reads a tensor, but mask.bias.data is NULL");
      if (dt(bias) != ATTNFORGE_F32 && dt(bias) != ATTNFORGE_BOOL && dt(bias) != dt(a.q)) {
        fail(std::string("expected mask.bias to have dtype f32, bool or the dtype of q (") + dtype_string(dt(a.q)) +
             "), got " + dtype_string(dt(bias)));
      }
      if (bias.rank != 4)
        fail("expected mask.bias to have rank 4 (B, Hq, Sq, Sk), got rank " + std::to_string(bias.rank));
      // Broadcastable to (B, Hq, Sq, Sk): each dim is 1 or the full size; a size-1 dim reads stride 0.
      const int64_t target[4] = {B, Hq, Sq, Sk};
      for (int i = 0; i < 4; ++i) {
        if (bias.sizes[i] != 1 && bias.sizes[i] != target[i])
          fail("expected mask.bias to be broadcastable to (B, Hq, Sq, Sk) = " + join(target, 4) + ", got " +
               sizes_of(bias));
      }
      // Same checks as any tensor, but the last dim may be broadcast or strided.
      attnforge_tensor b = bias;
      for (int i = 0; i < 4; ++i)
        if (b.sizes[i] == 1) b.strides[i] = 0;
      b.strides[3] = b.sizes[3] == 1 ? 1 : b.strides[3];
      for (int i = 0; i < 4; ++i)
        if (b.strides[i] < 0) fail("expected mask.bias to have non-negative strides, got " + strides_of(bias));
      int64_t offset = 0;
      for (int i = 0; i < 4; ++i) {
        int64_t term = 0;
        if (__builtin_mul_overflow(b.sizes[i] - 1, b.strides[i], &term) || __builtin_add_overflow(offset, term, &offset))
          fail("mask.bias is too large: its element offsets overflow int64 (sizes " + sizes_of(bias) + ", strides " +
               strides_of(bias) + ")");
      }
      p.bias = bias.data;
      p.bias_dtype = dt(bias);
      p.bias_stride_b = bias.sizes[0] == 1 ? 0 : bias.strides[0];
      p.bias_stride_h = bias.sizes[1] == 1 ? 0 : bias.strides[1];
      p.bias_stride_q = bias.sizes[2] == 1 ? 0 : bias.strides[2];
      p.bias_stride_k = bias.sizes[3] == 1 ? 0 : bias.strides[3];
    } else if (present(bias)) {
      fail(std::string("mask kind '") + kind + "' reads no tensor, but mask.bias.data is set; use mask kind 'bias'");
    }

    // ---- scale ----------------------------------------------------------------------------------
    float scale = a.scale;
    if (std::isinf(scale)) fail("expected scale to be finite, got " + std::to_string(scale));
    if (scale == 0.0f || std::isnan(scale)) scale = float(1.0 / std::sqrt(double(D)));  // default 1/√D
    // Kernels use scale·log2(e) (exp2): it must stay finite too (|scale| ≤ FLT_MAX / log2(e)). The
    // check is on the very value Params carries, rounded from double once.
    const float scale_log2 = float(double(scale) * 1.4426950408889634);
    if (std::isinf(scale_log2))
      fail("expected |scale| * log2(e) to be finite, got scale = " + std::to_string(scale));

    // ---- Params ---------------------------------------------------------------------------------
    // Dense strides are (batch, row, head); varlen tensors have no batch dim (batch stride 0,
    // sequences start at cu_seqlens[b]).
    auto strides3 = [&](const attnforge_tensor& t, int64_t& sb, int64_t& sr, int64_t& sh) {
      if (varlen) {
        sb = 0, sr = t.strides[0], sh = t.strides[1];
      } else {
        sb = t.strides[0], sr = t.strides[1], sh = t.strides[2];
      }
    };
    p.q = a.q.data;
    p.k = a.k.data;
    p.v = a.v.data;
    p.o = a.o.data;
    strides3(a.q, p.q_batch_stride, p.q_row_stride, p.q_head_stride);
    strides3(a.k, p.k_batch_stride, p.k_row_stride, p.k_head_stride);
    strides3(a.v, p.v_batch_stride, p.v_row_stride, p.v_head_stride);
    strides3(a.o, p.o_batch_stride, p.o_row_stride, p.o_head_stride);
    if (has_lse) {
      p.lse = static_cast<float*>(a.lse.data);
      if (varlen) {  // (Hq, total_q): lse(b, h, i) = lse[h*hs + q_start + i]
        p.lse_batch_stride = 0;
        p.lse_head_stride = a.lse.strides[0];
      } else {  // (B, Hq, Sq)
        p.lse_batch_stride = a.lse.strides[0];
        p.lse_head_stride = a.lse.strides[1];
      }
    }
    p.weights = wants_weights ? a.weights.data : nullptr;
    if (bwd) {
      p.d_o = a.d_o.data;
      p.dq = a.dq.data;
      p.dk = a.dk.data;
      p.dv = a.dv.data;
      strides3(a.d_o, p.do_batch_stride, p.do_row_stride, p.do_head_stride);
      strides3(a.dq, p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride);
      strides3(a.dk, p.dk_batch_stride, p.dk_row_stride, p.dk_head_stride);
      strides3(a.dv, p.dv_batch_stride, p.dv_row_stride, p.dv_head_stride);
    }
    p.batch = int(B);
    p.seqlen_q = int(Sq);
    p.seqlen_k = int(Sk);
    p.heads_q = int(Hq);
    p.heads_kv = int(Hkv);
    p.head_dim = int(D);
    p.total_q = total_q;
    p.total_k = total_k;
    p.cu_seqlens_q = a.cu_seqlens_q;
    p.cu_seqlens_k = a.cu_seqlens_k;
    p.scale = scale;
    p.scale_log2 = scale_log2;  // scale·log2(e): kernels use exp2
    p.deterministic = a.deterministic != 0;

    Problem pr{};
    pr.direction = dir;
    pr.dtype = DType(dt(a.q));
    pr.batch = p.batch;
    pr.seqlen_q = p.seqlen_q;
    pr.seqlen_k = p.seqlen_k;
    pr.heads_q = p.heads_q;
    pr.heads_kv = p.heads_kv;
    pr.head_dim = p.head_dim;
    pr.mask_id = mask_id;
    pr.varlen = varlen;
    pr.wants_weights = wants_weights;
    pr.memory_budget = a.memory_budget;

    out.params = p;
    out.problem = pr;
    out.lse_supplied = has_lse;
    error.clear();
    return ATTNFORGE_OK;
  } catch (const Invalid& e) {
    error = e.message;
    return e.status;
  }
}

}  // namespace attnforge
