// The valid call the argument-validation tests bend into bad ones: dense bf16 B=2, Sq=128, Sk=256,
// Hq=8, Hkv=2, D=64 with the backward tensors, and its varlen form. Pointers are fake: validation
// never dereferences them.
#pragma once
#include <cstdint>

#include "attnforge/attnforge.h"
#include "tensor_view.hpp"

namespace attnforge::test {

// A distinct, never dereferenced address per i.
inline void* fake_pointer(uintptr_t i) { return reinterpret_cast<void*>(uintptr_t(0x100000) * i); }

// q, o, d_o, dq (2, 128, 8, 64); k, v, dk, dv (2, 256, 2, 64); lse (2, 8, 128) f32; backend AUTO.
inline attnforge_args sample_dense_call() {
  attnforge_args a;
  attnforge_args_init(&a);
  a.q = contiguous_tensor(fake_pointer(1), ATTNFORGE_BF16, {2, 128, 8, 64});
  a.k = contiguous_tensor(fake_pointer(2), ATTNFORGE_BF16, {2, 256, 2, 64});
  a.v = contiguous_tensor(fake_pointer(3), ATTNFORGE_BF16, {2, 256, 2, 64});
  a.o = contiguous_tensor(fake_pointer(4), ATTNFORGE_BF16, {2, 128, 8, 64});
  a.lse = contiguous_tensor(fake_pointer(5), ATTNFORGE_F32, {2, 8, 128});
  a.d_o = contiguous_tensor(fake_pointer(6), ATTNFORGE_BF16, {2, 128, 8, 64});
  a.dq = contiguous_tensor(fake_pointer(7), ATTNFORGE_BF16, {2, 128, 8, 64});
  a.dk = contiguous_tensor(fake_pointer(8), ATTNFORGE_BF16, {2, 256, 2, 64});
  a.dv = contiguous_tensor(fake_pointer(9), ATTNFORGE_BF16, {2, 256, 2, 64});
  return a;
}

// The forward tensors of `a` made varlen: q, o (300, 8, 64), k, v (500, 2, 64), lse (8, 300), three
// sequences of at most 128 queries and 256 keys.
inline void make_sample_varlen(attnforge_args& a) {
  a.q = contiguous_tensor(fake_pointer(1), ATTNFORGE_BF16, {300, 8, 64});
  a.k = contiguous_tensor(fake_pointer(2), ATTNFORGE_BF16, {500, 2, 64});
  a.v = contiguous_tensor(fake_pointer(3), ATTNFORGE_BF16, {500, 2, 64});
  a.o = contiguous_tensor(fake_pointer(4), ATTNFORGE_BF16, {300, 8, 64});
  a.lse = contiguous_tensor(fake_pointer(5), ATTNFORGE_F32, {8, 300});
  a.cu_seqlens_q = static_cast<const int32_t*>(fake_pointer(10));
  a.cu_seqlens_k = static_cast<const int32_t*>(fake_pointer(11));
  a.batch_varlen = 3, a.max_seqlen_q = 128, a.max_seqlen_k = 256;
}

}  // namespace attnforge::test
