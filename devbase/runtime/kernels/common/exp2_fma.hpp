// 2^x on the FMA pipe, for softmax kernels whose exp2 count outruns the MUFU unit (16 per clock per SM
// against 128 FFMA): a fraction of the elements computed here runs beside ex2.approx on the MUFU.
// Host and device share the code, so the host test checks exactly the arithmetic the kernels run.
#pragma once
#include <cstdint>
#include <cstring>

#include "common/hd.hpp"

namespace attnforge::prim {

// The bits of `from` as a To of the same size; memcpy is the portable cast and compiles to a move.
template <class To, class From>
ATTNFORGE_HD To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From));
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}

// 2^x for x < 128, to ~2e-7 relative (ex2.approx's class). Below 2^−125 the result is 0, as
// ex2.approx.ftz flushes (−inf included). x = n + f with n = round(x), f ∈ [−½, ½]:
//   n: adding 1.5·2^23 rounds x to an integer held in the low mantissa bits of t (FADD, no F2I);
//   2^f: degree-5 polynomial, 1 + f·(c1 + f·(c2 + …)) by Horner (coefficients fitted to the relative
//        error on [−½, ½]: max 1.9e-7 in fp32);
//   2^n: n added to the exponent field of 2^f (2^f ∈ [2^−½, 2^½] has exponent −1 or 0, so the field
//        stays ≥ 1 for n ≥ −125).
// FMA-pipe work: 3 FADD + 5 FFMA; integer: a shift and an add; one compare-select.
ATTNFORGE_HD float exp2_fma(float x) {
  constexpr float kRound = 12582912.f;  // 1.5·2^23
  const float xc = x < -125.f ? -125.f : x;
  const float t = xc + kRound;
  const float f = xc - (t - kRound);  // [−½, ½]
  float p = fmaf(0.0013267695f, f, 0.0096715139f);
  p = fmaf(p, f, 0.055507235f);
  p = fmaf(p, f, 0.24022242f);
  p = fmaf(p, f, 0.69314700f);
  p = fmaf(p, f, 1.f);
  // (bits(t) << 23) is n << 23 modulo 2^32: t's bits are 0x4B400000 + n, and 0x4B400000 << 23 wraps to 0.
  const float y = bit_cast<float>(bit_cast<uint32_t>(p) + (bit_cast<uint32_t>(t) << 23));
  return x < -125.f ? 0.f : y;
}

}  // namespace attnforge::prim
