// libFuzzer target: the C API's argument validation. Each input decodes into an attnforge_args —
// a plausible call (dense or varlen) that a few fuzz-chosen mutations then bend: sizes, strides,
// ranks, dtypes, pointers (NULL, odd), cu_seqlens presence, varlen bounds, scale (NaN, inf), mask
// kind / scalars / bias, backend, variant name, workspace, budget. Properties checked:
//   - validate_args never crashes (ASan/UBSan watch) and returns OK, INVALID_ARGUMENT or UNSUPPORTED;
//     a rejection carries a message, an acceptance yields sane Params;
//   - forward, backward, workspace_size and select_backend report the same rejection (status and
//     message) for an invalid call; estimate the same for the call with its NULL data filled in
//     (estimates read shapes only);
//   - nothing is ever launched: the build links cuda_stub.cpp and launch_stub.cpp, which abort on
//     any device work, and with no device even a valid call must stop at a status.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "attnforge/attnforge.h"
#include "validate.hpp"
#include "variant_key.hpp"

#define FUZZ_CHECK(cond, ...)                                          \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "fuzz check failed: %s: ", #cond);          \
      std::fprintf(stderr, __VA_ARGS__);                               \
      std::fprintf(stderr, "\n");                                      \
      std::abort();                                                    \
    }                                                                  \
  } while (0)

namespace {

using namespace attnforge;

constexpr int64_t kInteresting[] = {0,
                                    1,
                                    -1,
                                    2,
                                    3,
                                    7,
                                    8,
                                    16,
                                    63,
                                    64,
                                    65,
                                    128,
                                    256,
                                    1023,
                                    1024,
                                    1025,
                                    65535,
                                    65536,
                                    std::numeric_limits<int32_t>::max(),
                                    int64_t(std::numeric_limits<int32_t>::max()) + 1,
                                    std::numeric_limits<uint32_t>::max(),
                                    int64_t(1) << 40,
                                    int64_t(1) << 62,
                                    std::numeric_limits<int64_t>::max(),
                                    std::numeric_limits<int64_t>::min(),
                                    std::numeric_limits<int64_t>::min() + 1};

int64_t value(FuzzedDataProvider& f) {
  switch (f.ConsumeIntegralInRange(0, 3)) {
    case 0: return f.ConsumeIntegralInRange<int64_t>(0, 300);
    case 1: return f.PickValueInArray(kInteresting);
    case 2: return f.ConsumeIntegral<int64_t>();
    default: return f.ConsumeIntegralInRange<int64_t>(-4, 4);
  }
}

// Fake device pointers: the validator never dereferences them (and nothing is launched).
void* fake(FuzzedDataProvider& f) {
  switch (f.ConsumeIntegralInRange(0, 3)) {
    case 0: return nullptr;
    case 1: return reinterpret_cast<void*>(uintptr_t(0x7f0000000001ull));  // odd address
    default: return reinterpret_cast<void*>(uintptr_t(0x7f0000000000ull) + (uintptr_t(f.ConsumeIntegral<uint16_t>()) << 8));
  }
}

void contiguous(attnforge_tensor& t, void* p, attnforge_dtype dt, std::initializer_list<int64_t> sizes) {
  t = attnforge_tensor{};
  t.data = p, t.dtype = dt, t.rank = int32_t(sizes.size());
  int i = 0;
  for (int64_t s : sizes) t.sizes[i++] = s;
  int64_t st = 1;
  for (int d = t.rank - 1; d >= 0; --d) t.strides[d] = st, st *= t.sizes[d];
}

void mutate_tensor(FuzzedDataProvider& f, attnforge_tensor& t) {
  switch (f.ConsumeIntegralInRange(0, 6)) {
    case 0: t.sizes[f.ConsumeIntegralInRange(0, ATTNFORGE_MAX_RANK - 1)] = value(f); break;
    case 1: t.strides[f.ConsumeIntegralInRange(0, ATTNFORGE_MAX_RANK - 1)] = value(f); break;
    case 2: t.rank = f.ConsumeIntegralInRange<int32_t>(-2, 6); break;
    case 3: t.dtype = attnforge_dtype(f.ConsumeIntegralInRange(-1, 5)); break;
    case 4: t.data = fake(f); break;
    case 5: t = attnforge_tensor{}; break;  // absent
    default:
      for (int i = 0; i < ATTNFORGE_MAX_RANK; ++i) t.sizes[i] = value(f), t.strides[i] = value(f);
  }
}

std::string g_variant, g_kind;  // storage for the string fields of the current input

// A plausible call, then mutations.
attnforge_args decode(FuzzedDataProvider& f, bool& backward) {
  attnforge_args a;
  attnforge_args_init(&a);
  backward = f.ConsumeBool();
  const bool varlen = f.ConsumeBool();
  const attnforge_dtype dt = attnforge_dtype(f.ConsumeIntegralInRange(0, 2));
  const int64_t B = f.ConsumeIntegralInRange<int64_t>(1, 4), Sq = f.ConsumeIntegralInRange<int64_t>(1, 300);
  const int64_t Sk = f.ConsumeIntegralInRange<int64_t>(1, 300), Hkv = f.ConsumeIntegralInRange<int64_t>(1, 4);
  const int64_t Hq = Hkv * f.ConsumeIntegralInRange<int64_t>(1, 4);
  const int64_t D = f.PickValueInArray({int64_t(64), int64_t(128), int64_t(40), int64_t(1), int64_t(1024)});
  void* base = reinterpret_cast<void*>(uintptr_t(0x7f0000000000ull));
  auto ptr = [&](int i) { return static_cast<void*>(static_cast<char*>(base) + (int64_t(i) << 32)); };
  if (varlen) {
    contiguous(a.q, ptr(1), dt, {B * Sq, Hq, D});
    contiguous(a.k, ptr(2), dt, {B * Sk, Hkv, D});
    contiguous(a.v, ptr(3), dt, {B * Sk, Hkv, D});
    contiguous(a.o, ptr(4), dt, {B * Sq, Hq, D});
    contiguous(a.lse, ptr(5), ATTNFORGE_F32, {Hq, B * Sq});
    a.cu_seqlens_q = static_cast<const int32_t*>(ptr(6));
    a.cu_seqlens_k = static_cast<const int32_t*>(ptr(7));
    a.batch_varlen = int32_t(B), a.max_seqlen_q = int32_t(Sq), a.max_seqlen_k = int32_t(Sk);
  } else {
    contiguous(a.q, ptr(1), dt, {B, Sq, Hq, D});
    contiguous(a.k, ptr(2), dt, {B, Sk, Hkv, D});
    contiguous(a.v, ptr(3), dt, {B, Sk, Hkv, D});
    contiguous(a.o, ptr(4), dt, {B, Sq, Hq, D});
    contiguous(a.lse, ptr(5), ATTNFORGE_F32, {B, Hq, Sq});
  }
  if (backward) {
    a.d_o = a.o, a.d_o.data = ptr(8);
    a.dq = a.q, a.dq.data = ptr(9);
    a.dk = a.k, a.dk.data = ptr(10);
    a.dv = a.v, a.dv.data = ptr(11);
  }
  const char* kinds[] = {nullptr, "none", "causal", "window", "bias", "", "Causal", "window\x01", "prefix_lm"};
  const int kind = f.ConsumeIntegralInRange(0, int(sizeof kinds / sizeof *kinds) - 1);
  a.mask.kind = kinds[kind];
  if (a.mask.kind && std::strcmp(a.mask.kind, "bias") == 0)
    contiguous(a.mask.bias, ptr(12), f.ConsumeBool() ? ATTNFORGE_BOOL : dt, {1, Hq, Sq, Sk});
  a.backend = attnforge_backend(f.ConsumeIntegralInRange(0, 3));

  // mutations
  const int n = f.ConsumeIntegralInRange(0, 8);
  for (int m = 0; m < n && f.remaining_bytes() > 0; ++m) {
    attnforge_tensor* tensors[] = {&a.q, &a.k, &a.v, &a.o, &a.lse, &a.weights, &a.d_o, &a.dq, &a.dk, &a.dv, &a.mask.bias};
    switch (f.ConsumeIntegralInRange(0, 14)) {
      case 0:
      case 1:
      case 2:
      case 3: mutate_tensor(f, *tensors[f.ConsumeIntegralInRange(0, 10)]); break;
      case 4: a.cu_seqlens_q = static_cast<const int32_t*>(fake(f)); break;
      case 5: a.cu_seqlens_k = static_cast<const int32_t*>(fake(f)); break;
      case 6: a.batch_varlen = int32_t(value(f)); break;
      case 7: (f.ConsumeBool() ? a.max_seqlen_q : a.max_seqlen_k) = int32_t(value(f)); break;
      case 8: {
        const float scales[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, 1e30f, std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                                std::numeric_limits<float>::denorm_min()};
        a.scale = f.ConsumeBool() ? f.PickValueInArray(scales) : f.ConsumeFloatingPoint<float>();
        break;
      }
      case 9: a.mask.scalars[f.ConsumeIntegralInRange(0, ATTNFORGE_MAX_MASK_SCALARS - 1)] = value(f); break;
      case 10:
        g_kind = f.ConsumeRandomLengthString(24);
        a.mask.kind = g_kind.c_str();
        break;
      case 11: a.backend = attnforge_backend(f.ConsumeIntegralInRange(-2, 6)); break;
      case 12: {
        const int nv = attnforge_variant_count();
        if (f.ConsumeBool() && nv > 0) g_variant = attnforge_variant_name(f.ConsumeIntegralInRange(0, nv - 1));
        else g_variant = f.ConsumeRandomLengthString(80);
        a.variant = g_variant.c_str();
        break;
      }
      case 13:
        a.workspace = fake(f);
        a.workspace_bytes = size_t(value(f));
        break;
      default:
        a.memory_budget = size_t(value(f));
        a.deterministic = f.ConsumeIntegral<int32_t>();
    }
  }
  return a;
}

bool valid_status(attnforge_status s) { return s >= ATTNFORGE_OK && s <= ATTNFORGE_INTERNAL; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider f(data, size);
  bool backward = false;
  const attnforge_args a = decode(f, backward);
  const Direction dir = backward ? Direction::bwd : Direction::fwd;

  // ---- the validator itself --------------------------------------------------------------------
  ValidatedCall call;
  std::string error;
  const attnforge_status st = validate_args(a, dir, call, error);
  FUZZ_CHECK(st == ATTNFORGE_OK || st == ATTNFORGE_INVALID_ARGUMENT || st == ATTNFORGE_UNSUPPORTED, "status %d", int(st));
  if (st != ATTNFORGE_OK) {
    FUZZ_CHECK(!error.empty(), "a rejection without a message");
  } else {
    const Params& p = call.params;
    FUZZ_CHECK(error.empty(), "accepted with message '%s'", error.c_str());
    FUZZ_CHECK(p.batch >= 1 && p.seqlen_q >= 1 && p.seqlen_k >= 1, "sizes B %d Sq %d Sk %d", p.batch, p.seqlen_q,
               p.seqlen_k);
    // Lengths bound the token counts and leave room to round up to whole tiles in int32.
    FUZZ_CHECK(p.seqlen_q <= p.total_q && p.seqlen_k <= p.total_k, "Sq %d > total_q %lld or Sk %d > total_k %lld",
               p.seqlen_q, (long long)p.total_q, p.seqlen_k, (long long)p.total_k);
    FUZZ_CHECK(p.seqlen_q <= kMaxSeqlen && p.seqlen_k <= kMaxSeqlen, "Sq %d Sk %d", p.seqlen_q,
               p.seqlen_k);
    FUZZ_CHECK(p.heads_kv >= 1 && p.heads_q >= p.heads_kv && p.heads_q % p.heads_kv == 0, "heads %d / %d", p.heads_q,
               p.heads_kv);
    FUZZ_CHECK(p.head_dim >= 1 && p.head_dim <= 1024, "head_dim %d", p.head_dim);
    FUZZ_CHECK(std::isfinite(p.scale), "scale %g", double(p.scale));
    FUZZ_CHECK(std::isfinite(p.scale_log2), "scale %g: scale_log2 %g", double(p.scale), double(p.scale_log2));
    FUZZ_CHECK(p.q && p.k && p.v && p.o, "a required pointer is null");
    FUZZ_CHECK(!backward || (p.d_o && p.dq && p.dk && p.dv && p.lse), "a backward pointer is null");
    FUZZ_CHECK(p.total_q >= 1 && p.total_k >= 1, "totals %lld %lld", (long long)p.total_q, (long long)p.total_k);
  }

  // ---- every entry point agrees on a rejection, and nothing launches -----------------------------
  size_t bytes = 12345;
  const attnforge_status ws = attnforge_workspace_size(&a, backward, &bytes);
  FUZZ_CHECK(valid_status(ws), "workspace_size status %d", int(ws));
  char variant[128], reason[512];
  attnforge_backend chosen = ATTNFORGE_BACKEND_AUTO;
  const attnforge_status sel = attnforge_select_backend(&a, backward, &chosen, variant, sizeof variant, reason, sizeof reason);
  FUZZ_CHECK(valid_status(sel), "select status %d", int(sel));
  FUZZ_CHECK(sel == ws, "select_backend %d vs workspace_size %d", int(sel), int(ws));
  // attnforge_estimate reads shapes only: NULL data of a tensor that has a rank is allowed there
  attnforge_args shapes = a;
  // (the backward's tensors and lse only for a backward: a forward's lse is optional)
  for (attnforge_tensor* t : {&shapes.q, &shapes.k, &shapes.v, &shapes.o, &shapes.weights, &shapes.mask.bias, &shapes.d_o,
                              &shapes.dq, &shapes.dk, &shapes.dv, &shapes.lse}) {
    const bool backward_only = t == &shapes.d_o || t == &shapes.dq || t == &shapes.dk || t == &shapes.dv || t == &shapes.lse;
    if (t->data == nullptr && t->rank > 0 && (backward || !backward_only))
      t->data = reinterpret_cast<void*>(uintptr_t(1) << 40);
  }
  ValidatedCall shape_call;
  std::string shape_error;
  const attnforge_status shape_st = validate_args(shapes, dir, shape_call, shape_error);
  attnforge_backend_estimate est[3];
  int count = -1;
  const attnforge_status es = attnforge_estimate(&a, backward, est, 3, &count);
  FUZZ_CHECK(valid_status(es), "estimate status %d", int(es));
  FUZZ_CHECK(es == shape_st, "estimate %d vs validation of the shapes %d (%s)", int(es), int(shape_st),
             shape_error.c_str());
  const attnforge_status run = backward ? attnforge_backward(&a, nullptr) : attnforge_forward(&a, nullptr);
  const std::string run_msg = attnforge_last_error();
  FUZZ_CHECK(run != ATTNFORGE_OK, "a call succeeded without a device");
  if (st != ATTNFORGE_OK) {
    FUZZ_CHECK(ws == st && bytes == 0, "workspace_size %d (bytes %zu) vs validation %d", int(ws), bytes, int(st));
    FUZZ_CHECK(std::string(reason) == error.substr(0, sizeof reason - 1), "select reason '%s' vs '%s'", reason,
               error.c_str());
    FUZZ_CHECK(run == st && run_msg == error, "call %d '%s' vs validation %d '%s'", int(run), run_msg.c_str(), int(st),
               error.c_str());
  } else if (sel == ATTNFORGE_OK) {
    // valid and selected: with no device the call stops at the device query, before any launch
    FUZZ_CHECK(run == ATTNFORGE_CUDA_ERROR, "valid call without a device returned %d: %s", int(run), run_msg.c_str());
  } else {
    FUZZ_CHECK(run == sel && !run_msg.empty(), "call %d vs select %d", int(run), int(sel));
  }
  return 0;
}
