// Workspace layout of the unfused backend: which scratch buffers one call uses and where they sit.
// Shared by the launch code (unfused/fwd.cuh, unfused/bwd.cuh) and runtime/src/workspace_unfused.cpp,
// so the bytes the runtime allocates are exactly the bytes the launch carves up. Host-only.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/params.hpp"
#include "common/variant.hpp"

namespace attnforge::unfused {

constexpr size_t kAlign = 256;  // every buffer starts 256-byte aligned (vector loads, cuBLAS)

inline constexpr size_t elem_bytes(DType t) { return t == DType::f32 ? 4 : 2; }
inline constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Byte counts saturate at kOverflow instead of wrapping: varlen max lengths are only capped at
// int32, so B·Hq·Sq·Sk·4 can pass 2⁶⁴, and a wrapped (small) size would under-allocate. The runtime
// refuses any call whose workspace reaches kOverflow (c_api.cpp) before anything is launched.
constexpr size_t kOverflow = ~size_t(0);
inline size_t sat_mul(size_t a, size_t b) {
  size_t r;
  return __builtin_mul_overflow(a, b, &r) ? kOverflow : r;
}
inline size_t sat_add(size_t a, size_t b) {
  size_t r;
  return __builtin_add_overflow(a, b, &r) ? kOverflow : r;
}

// Buffers, as byte offsets into Params::workspace (kNone = not in the workspace).
// Rows of the score-shaped buffers are the (B, Hq, Sq) rows in that order; Sq, Sk are the
// (maximum) lengths of Params, so varlen sequences use the top-left (sq × sk) corner of theirs.
struct Layout {
  static constexpr size_t kNone = ~size_t(0);
  int64_t rows = 0;           // B · Hq · Sq
  int64_t ld_s = 0;           // fp32 S / dP row pitch: Sk rounded up to 4 (16-byte rows)
  int64_t ld_p = 0;           // P / dS row pitch in elements (Params::weights: exactly Sk)
  size_t s = kNone;           // fp32 (rows, ld_s): S = Q·Kᵀ, later dP = dO·Vᵀ (backward)
  size_t p = kNone;           // dtype (rows, ld_p): P, later dS (backward); kNone ⇒ weights / alias
  bool p_aliases_s = false;   // forward f32 without weights: P overwrites S in place
  size_t dk_acc = kNone;      // backward: fp32 (B, Hkv, Sk, D) (varlen: (1, Hkv, total_k, D)):
  size_t dv_acc = kNone;      //   dK, dV summed over the query heads of each kv head's group
  size_t total = 0;           // bytes
};

inline Layout make_layout(DType t, Direction dir, const Params& p) {
  Layout L;
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t off = at;
    at = bytes >= kOverflow - kAlign ? kOverflow : sat_add(at, (bytes + kAlign - 1) / kAlign * kAlign);
    return off;
  };
  const int64_t sq = p.seqlen_q, sk = p.seqlen_k;
  const size_t es = elem_bytes(t);
  L.rows = int64_t(p.batch) * p.heads_q * sq;
  L.ld_s = round_up(sk, 4);
  const int64_t ld_p_ws = round_up(sk, int64_t(16 / es));  // 16-byte rows in the workspace
  L.s = take(sat_mul(sat_mul(size_t(L.rows), size_t(L.ld_s)), sizeof(float)));
  if (dir == Direction::fwd) {
    if (p.weights != nullptr) {
      L.ld_p = sk;  // P goes straight to the caller's contiguous (B, Hq, Sq, Sk)
    } else if (t == DType::f32) {
      L.ld_p = L.ld_s;  // same element size: each thread overwrites exactly what it read
      L.p_aliases_s = true;
    } else {
      L.ld_p = ld_p_ws;
      L.p = take(sat_mul(sat_mul(size_t(L.rows), size_t(L.ld_p)), es));
    }
  } else {
    L.ld_p = ld_p_ws;
    L.p = take(sat_mul(sat_mul(size_t(L.rows), size_t(L.ld_p)), es));
    const size_t acc = sat_mul(sat_mul(sat_mul(size_t(p.total_k), size_t(p.heads_kv)), size_t(p.head_dim)), sizeof(float));
    L.dk_acc = take(acc);
    L.dv_acc = take(acc);
  }
  L.total = at;
  return L;
}

}  // namespace attnforge::unfused
