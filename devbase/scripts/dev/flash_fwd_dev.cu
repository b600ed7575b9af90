// Dev-only driver (not part of the library): instantiates flash::run_fwd on hand-written variants and
// exposes one extern "C" entry for ctypes (scripts/dev/flash_fwd_dev.py checks and times it beside
// PyTorch in one process). Build: nvcc -shared -Xcompiler -fPIC ... -o libflashdev.so
#include <cstdio>
#include <cstring>

#include "flash/fwd.cuh"
#include "flash_fwd_dev_masks.hpp"

using namespace attnforge;
namespace m = attnforge::devmask;

template <DType T, int D, class M, int BM, int BN, int W, int S, int A = 0>
using FV = Variant<Backend::flash, Direction::fwd, T, D, M, Tile<BM, BN, W, S, A>>;

struct Entry {
  const char* name;
  attnforge_status (*fn)(const Params&, cudaStream_t, flash::FwdPath);
};
#define E(name, ...) {name, &flash::run_fwd_path<FV<__VA_ARGS__>>}
static const Entry kEntries[] = {
#if defined(DEV_WS) && defined(DEV_TRACE_SET)  // the shipped D 64 / 128 WS tiles only (a short build for `trace`)
    E("bf16_hd64_none_m128n128w12s2_sm90a", DType::bf16, 64, m::none, 128, 128, 12, 2, 90),
    E("bf16_hd64_causal_m128n128w12s2_sm90a", DType::bf16, 64, m::causal, 128, 128, 12, 2, 90),
    E("bf16_hd64_none_m192n128w16s2_sm90a", DType::bf16, 64, m::none, 192, 128, 16, 2, 90),
    E("bf16_hd64_causal_m192n128w16s2_sm90a", DType::bf16, 64, m::causal, 192, 128, 16, 2, 90),
    E("bf16_hd128_none_m128n128w12s2_sm90a", DType::bf16, 128, m::none, 128, 128, 12, 2, 90),
    E("bf16_hd128_causal_m128n128w12s2_sm90a", DType::bf16, 128, m::causal, 128, 128, 12, 2, 90),
#elif defined(DEV_WS)  // the warp-specialized sm_90a kernel (flash/fwd_sm90_ws.cuh; one path)
#if !defined(DEV_WIDE)  // -DDEV_WIDE: only the head dim 192 / 256 entries below (a shorter build)
    E("bf16_hd128_none_m128n128w12s2_sm90a", DType::bf16, 128, m::none, 128, 128, 12, 2, 90),
    E("bf16_hd128_causal_m128n128w12s2_sm90a", DType::bf16, 128, m::causal, 128, 128, 12, 2, 90),
    E("bf16_hd64_none_m128n128w12s2_sm90a", DType::bf16, 64, m::none, 128, 128, 12, 2, 90),
    E("bf16_hd64_causal_m128n128w12s2_sm90a", DType::bf16, 64, m::causal, 128, 128, 12, 2, 90),
    E("bf16_hd64_window_m128n128w12s2_sm90a", DType::bf16, 64, m::window, 128, 128, 12, 2, 90),
    E("f16_hd128_causal_m128n128w12s2_sm90a", DType::f16, 128, m::causal, 128, 128, 12, 2, 90),
    // 176 / 192-key tiles (FA3 streams 176 at D 128 non-causal; 192 spills there): in no variant set until measured
    E("bf16_hd128_none_m128n176w12s2_sm90a", DType::bf16, 128, m::none, 128, 176, 12, 2, 90),
    E("bf16_hd128_causal_m128n176w12s2_sm90a", DType::bf16, 128, m::causal, 128, 176, 12, 2, 90),
    E("bf16_hd64_none_m128n192w12s2_sm90a", DType::bf16, 64, m::none, 128, 192, 12, 2, 90),
    E("bf16_hd64_causal_m128n192w12s2_sm90a", DType::bf16, 64, m::causal, 128, 192, 12, 2, 90),
    // three stages: O staged in Q's rows (no room for its own buffer)
    E("bf16_hd128_none_m128n128w12s3_sm90a", DType::bf16, 128, m::none, 128, 128, 12, 3, 90),
    E("bf16_hd128_causal_m128n128w12s3_sm90a", DType::bf16, 128, m::causal, 128, 128, 12, 3, 90),
    // three consumer warpgroups (FA3's D = 64 shape): not in any variant set until measured
    E("bf16_hd64_none_m192n128w16s2_sm90a", DType::bf16, 64, m::none, 192, 128, 16, 2, 90),
    E("bf16_hd64_causal_m192n128w16s2_sm90a", DType::bf16, 64, m::causal, 192, 128, 16, 2, 90),
    E("bf16_hd64_window_m192n128w16s2_sm90a", DType::bf16, 64, m::window, 192, 128, 16, 2, 90),
    // 64-key tiles for D 64 causal at S ≤ 2048 (0.84× cuDNN there with n128: a narrower diagonal
    // tile wastes less; more stages fit): in no variant set until measured
    E("bf16_hd64_causal_m128n64w12s2_sm90a", DType::bf16, 64, m::causal, 128, 64, 12, 2, 90),
    E("bf16_hd64_causal_m128n64w12s3_sm90a", DType::bf16, 64, m::causal, 128, 64, 12, 3, 90),
#endif
    // head dims 192 and 256 on the WS kernel (n64 s2 is the library's first tile there since v13):
    // S, P, O = 32 + 16 + 96 / 128 accumulator registers with 64 keys
    E("bf16_hd192_none_m128n64w12s2_sm90a", DType::bf16, 192, m::none, 128, 64, 12, 2, 90),
    E("bf16_hd192_causal_m128n64w12s2_sm90a", DType::bf16, 192, m::causal, 128, 64, 12, 2, 90),
    E("bf16_hd192_none_m128n64w12s3_sm90a", DType::bf16, 192, m::none, 128, 64, 12, 3, 90),
    E("bf16_hd256_none_m128n64w12s2_sm90a", DType::bf16, 256, m::none, 128, 64, 12, 2, 90),
    E("bf16_hd256_causal_m128n64w12s2_sm90a", DType::bf16, 256, m::causal, 128, 64, 12, 2, 90),
    // wider key tiles there (FA3 streams 112 keys at hd192, 80 at hd256): S, P, O = 48 + 24 + 96 (n96),
    // 56 + 28 + 96 (n112) and 40 + 20 + 128 (n80) accumulator registers; K/V 2 stages 144 / 168 / 160 KiB
    E("bf16_hd192_none_m128n96w12s2_sm90a", DType::bf16, 192, m::none, 128, 96, 12, 2, 90),
    E("bf16_hd192_causal_m128n96w12s2_sm90a", DType::bf16, 192, m::causal, 128, 96, 12, 2, 90),
    E("bf16_hd192_none_m128n112w12s2_sm90a", DType::bf16, 192, m::none, 128, 112, 12, 2, 90),
    E("bf16_hd192_causal_m128n112w12s2_sm90a", DType::bf16, 192, m::causal, 128, 112, 12, 2, 90),
    E("bf16_hd256_none_m128n80w12s2_sm90a", DType::bf16, 256, m::none, 128, 80, 12, 2, 90),
    E("bf16_hd256_causal_m128n80w12s2_sm90a", DType::bf16, 256, m::causal, 128, 80, 12, 2, 90),
#elif !defined(DEV_SET)
    E("bf16_hd64_none_m128n64w4s2", DType::bf16, 64, m::none, 128, 64, 4, 2),
    E("bf16_hd64_causal_m128n64w4s2", DType::bf16, 64, m::causal, 128, 64, 4, 2),
    E("bf16_hd64_none_m128n128w4s2", DType::bf16, 64, m::none, 128, 128, 4, 2),
    E("bf16_hd64_causal_m128n128w4s2", DType::bf16, 64, m::causal, 128, 128, 4, 2),
    E("bf16_hd128_none_m128n64w4s2", DType::bf16, 128, m::none, 128, 64, 4, 2),
    E("bf16_hd128_causal_m128n64w4s2", DType::bf16, 128, m::causal, 128, 64, 4, 2),
    E("bf16_hd128_none_m128n128w8s2", DType::bf16, 128, m::none, 128, 128, 8, 2),
    E("bf16_hd128_causal_m128n128w8s2", DType::bf16, 128, m::causal, 128, 128, 8, 2),
    E("bf16_hd128_none_m64n64w4s2", DType::bf16, 128, m::none, 64, 64, 4, 2),
    E("bf16_hd128_causal_m64n64w4s2", DType::bf16, 128, m::causal, 64, 64, 4, 2),
    E("bf16_hd64_none_m64n64w4s2", DType::bf16, 64, m::none, 64, 64, 4, 2),
    E("bf16_hd64_causal_m64n64w4s2", DType::bf16, 64, m::causal, 64, 64, 4, 2),
    E("bf16_hd128_none_m64n128w4s2", DType::bf16, 128, m::none, 64, 128, 4, 2),
    E("bf16_hd128_causal_m64n128w4s2", DType::bf16, 128, m::causal, 64, 128, 4, 2),
    E("bf16_hd64_window_m64n64w4s2", DType::bf16, 64, m::window, 64, 64, 4, 2),
    E("bf16_hd128_bias_m64n64w4s2", DType::bf16, 128, m::bias, 64, 64, 4, 2),
    E("bf16_hd64_none_m128n128w8s2", DType::bf16, 64, m::none, 128, 128, 8, 2),
    E("bf16_hd64_causal_m128n128w8s2", DType::bf16, 64, m::causal, 128, 128, 8, 2),
    E("f16_hd128_causal_m128n64w4s2", DType::f16, 128, m::causal, 128, 64, 4, 2),
    E("bf16_hd64_window_m128n64w4s2", DType::bf16, 64, m::window, 128, 64, 4, 2),
    E("bf16_hd64_bias_m128n64w4s2", DType::bf16, 64, m::bias, 128, 64, 4, 2),
    E("bf16_hd32_causal_m128n64w4s2", DType::bf16, 32, m::causal, 128, 64, 4, 2),
    E("bf16_hd96_causal_m64n64w4s2", DType::bf16, 96, m::causal, 64, 64, 4, 2),
    E("bf16_hd256_causal_m64n64w4s2", DType::bf16, 256, m::causal, 64, 64, 4, 2),
    E("bf16_hd192_none_m64n64w4s3", DType::bf16, 192, m::none, 64, 64, 4, 3),
#else
    E("bf16_hd64_causal_m128n64w4s2", DType::bf16, 64, m::causal, 128, 64, 4, 2),
#endif
};

extern "C" int dev_num_variants() { return int(sizeof(kEntries) / sizeof(kEntries[0])); }
extern "C" const char* dev_variant_name(int i) { return kEntries[i].name; }

// Shapes: q (B, Sq, Hq, D) / k, v (B, Sk, Hkv, D) by strides[12] = {q b,s,h; k b,s,h; v b,s,h; o b,s,h};
// varlen when cu_q != null (then B = number of sequences, Sq/Sk = max lengths, batch strides 0).
extern "C" int dev_flash_fwd(int variant, int path, const void* q, const void* k, const void* v, void* o, float* lse,
                             const long long* strides, int B, int Sq, int Sk, int Hq, int Hkv, int D,
                             const int* cu_q, const int* cu_k, long long total_q, long long total_k,
                             float scale, int s0, int s1, const void* bias, int bias_dtype,
                             const long long* bias_strides, void* stream) {
  Params p;
  std::memset(&p, 0, sizeof(p));
  p.q = q; p.k = k; p.v = v; p.o = o; p.lse = lse;
  p.q_batch_stride = strides[0]; p.q_row_stride = strides[1]; p.q_head_stride = strides[2];
  p.k_batch_stride = strides[3]; p.k_row_stride = strides[4]; p.k_head_stride = strides[5];
  p.v_batch_stride = strides[6]; p.v_row_stride = strides[7]; p.v_head_stride = strides[8];
  p.o_batch_stride = strides[9]; p.o_row_stride = strides[10]; p.o_head_stride = strides[11];
  // lse (B, Hq, Sq) dense; varlen (Hq, total_q)
  if (cu_q) { p.lse_batch_stride = 0; p.lse_head_stride = total_q; }
  else { p.lse_batch_stride = (long long)Hq * Sq; p.lse_head_stride = Sq; }
  p.batch = B; p.seqlen_q = Sq; p.seqlen_k = Sk; p.heads_q = Hq; p.heads_kv = Hkv; p.head_dim = D;
  p.total_q = total_q; p.total_k = total_k; p.cu_seqlens_q = cu_q; p.cu_seqlens_k = cu_k;
  p.scale = scale; p.scale_log2 = scale * 1.4426950408889634f;
  p.mask.v[0] = s0; p.mask.v[1] = s1;
  p.bias = bias; p.bias_dtype = bias_dtype;
  if (bias_strides) {
    p.bias_stride_b = bias_strides[0]; p.bias_stride_h = bias_strides[1];
    p.bias_stride_q = bias_strides[2]; p.bias_stride_k = bias_strides[3];
  }
  p.deterministic = false;
  return int(kEntries[variant].fn(p, static_cast<cudaStream_t>(stream), static_cast<flash::FwdPath>(path)));
}

#if ATTNFORGE_FLASH_FWD_TRACE
// The warp-specialized forward's timeline of the last launch (flash/fwd_sm90_ws.cuh, fwd_trace::g):
// (CTA, role, block, event) clock64 values, copied into `host`; dims[4] = those four extents.
namespace tr = flash::fwd_trace;
constexpr size_t kTraceBytes = sizeof(long long) * tr::kCtas * tr::kRoles * tr::kBlocks * tr::kEvents;
extern "C" void dev_trace_dims(int* dims) {
  dims[0] = tr::kCtas, dims[1] = tr::kRoles, dims[2] = tr::kBlocks, dims[3] = tr::kEvents;
}
extern "C" int dev_trace_read(void* host) { return int(cudaMemcpyFromSymbol(host, tr::g, kTraceBytes)); }
extern "C" int dev_trace_clear() {
  static long long zeros[kTraceBytes / sizeof(long long)] = {};
  return int(cudaMemcpyToSymbol(tr::g, zeros, kTraceBytes));
}
#endif
