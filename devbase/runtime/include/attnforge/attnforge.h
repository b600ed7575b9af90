/* attnforge C API — the stable, extern "C" surface of libattnforge.so.
 * Layout (DESIGN.md): q (B, Sq, Hq, D), k/v (B, Sk, Hkv, D), any strides with the last dim
 * contiguous; varlen packs tokens as (total, H, D) with int32 cu_seqlens (B+1). LSE is fp32 (B, Hq, Sq). */
#ifndef ATTNFORGE_ATTNFORGE_H
#define ATTNFORGE_ATTNFORGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define ATTNFORGE_API __declspec(dllexport)
#else
#define ATTNFORGE_API __attribute__((visibility("default")))
#endif

#define ATTNFORGE_VERSION_MAJOR 0
#define ATTNFORGE_VERSION_MINOR 1
#define ATTNFORGE_VERSION_PATCH 0
#define ATTNFORGE_MAX_RANK 4
#define ATTNFORGE_MAX_MASK_SCALARS 4

typedef enum attnforge_status {
  ATTNFORGE_OK = 0,
  ATTNFORGE_INVALID_ARGUMENT = 1,  /* bad shape, dtype, stride, pointer: nothing was launched */
  ATTNFORGE_UNSUPPORTED = 2,       /* valid input, but no compiled variant covers it */
  ATTNFORGE_CUDA_ERROR = 3,        /* a CUDA / cuBLAS call failed */
  ATTNFORGE_OUT_OF_MEMORY = 4,     /* workspace allocation failed */
  ATTNFORGE_INTERNAL = 5
} attnforge_status;

typedef enum attnforge_dtype {
  ATTNFORGE_F32 = 0,
  ATTNFORGE_F16 = 1,
  ATTNFORGE_BF16 = 2,
  ATTNFORGE_BOOL = 3 /* only for a boolean attention mask: 1 byte, nonzero = visible */
} attnforge_dtype;

typedef enum attnforge_backend {
  ATTNFORGE_BACKEND_AUTO = 0,
  ATTNFORGE_BACKEND_UNFUSED = 1,
  ATTNFORGE_BACKEND_FUSED = 2,
  ATTNFORGE_BACKEND_FLASH = 3
} attnforge_backend;

/* A strided view of device memory. sizes/strides are in elements; unused trailing dims ignored.
 * data == NULL with rank == 0 means "absent" for optional tensors. */
typedef struct attnforge_tensor {
  void* data;
  attnforge_dtype dtype;
  int32_t rank;
  int64_t sizes[ATTNFORGE_MAX_RANK];
  int64_t strides[ATTNFORGE_MAX_RANK];
} attnforge_tensor;

/* The mask: a kind by its canonical name ("none", "causal", "window", "bias", or a kind defined in
 * the variant TOML), its runtime scalars in the order the TOML names them (window: left, right;
 * -1 = unbounded), and for kinds that read a tensor, the bias: additive float (same dtype as q, or
 * fp32) or ATTNFORGE_BOOL, rank 4, broadcastable to (B, Hq, Sq, Sk) through zero strides. */
typedef struct attnforge_mask {
  const char* kind; /* NULL means "none" */
  int64_t scalars[ATTNFORGE_MAX_MASK_SCALARS];
  attnforge_tensor bias;
} attnforge_mask;

/* Everything one attention call sees. Forward reads q, k, v and writes o (and lse, weights when
 * present). Backward reads q, k, v, o, lse, d_o and writes dq, dk, dv. */
typedef struct attnforge_args {
  attnforge_tensor q;        /* (B, Sq, Hq, D)  or varlen (total_q, Hq, D) */
  attnforge_tensor k;        /* (B, Sk, Hkv, D) or varlen (total_k, Hkv, D) */
  attnforge_tensor v;        /* (B, Sk, Hkv, D) or varlen (total_k, Hkv, D) */
  attnforge_tensor o;        /* like q */
  attnforge_tensor lse;      /* fp32 (B, Hq, Sq), or varlen (Hq, total_q); optional in forward */
  attnforge_tensor weights;  /* optional: P, like (B, Hq, Sq, Sk), dtype of q (unfused, fused) */
  attnforge_tensor d_o;      /* backward: like o */
  attnforge_tensor dq, dk, dv; /* backward: like q, k, v */
  const int32_t* cu_seqlens_q; /* varlen: device, B+1 entries, or NULL */
  const int32_t* cu_seqlens_k;
  int32_t batch_varlen;        /* varlen: B (number of sequences) */
  int32_t max_seqlen_q, max_seqlen_k; /* varlen: upper bounds of the sequence lengths (a bound above total_q / total_k is clamped to it) */
  float scale;               /* softmax scale; 0 (or NaN) means 1/sqrt(D) */
  attnforge_mask mask;
  attnforge_backend backend; /* explicit choice; AUTO lets the selector decide */
  const char* variant;       /* optional: exact variant name (autotuner, tests); NULL = choose */
  int32_t deterministic;     /* backward: bitwise reproducible results run to run */
  void* workspace;           /* optional: device scratch of attnforge_workspace_size() bytes; */
  size_t workspace_bytes;    /*   NULL = the library allocates stream-ordered (cudaMallocAsync) */
  size_t memory_budget;      /* AUTO only: exclude backends needing more device bytes; 0 = none */
} attnforge_args;

/* Initialise args to defaults (no mask, AUTO, default scale). Always call before filling. */
ATTNFORGE_API void attnforge_args_init(attnforge_args* args);

/* stream is a cudaStream_t (NULL = legacy default stream). */
ATTNFORGE_API attnforge_status attnforge_forward(const attnforge_args* args, void* stream);
ATTNFORGE_API attnforge_status attnforge_backward(const attnforge_args* args, void* stream);

/* Bytes of scratch the call would need (forward: is_backward = 0), on the current device: the flash
   kernels' split last round / wave sizes with its SM count, so ask with the device of the call current.
   A caller workspace smaller than this is not used (the library allocates its own). */
ATTNFORGE_API attnforge_status attnforge_workspace_size(const attnforge_args* args, int is_backward,
                                                        size_t* bytes);

/* Which backend AUTO picks for these args, and why (reason copied into reason[0..reason_len)). */
ATTNFORGE_API attnforge_status attnforge_select_backend(const attnforge_args* args, int is_backward,
                                                        attnforge_backend* chosen, char* variant,
                                                        size_t variant_len, char* reason,
                                                        size_t reason_len);

/* Message of the last failed call on this thread ("" if none). Valid until the next call. */
ATTNFORGE_API const char* attnforge_last_error(void);
ATTNFORGE_API const char* attnforge_status_string(attnforge_status status);
ATTNFORGE_API const char* attnforge_backend_name(attnforge_backend backend);
ATTNFORGE_API const char* attnforge_version(void);

/* The compiled variants: count, and the canonical name of the i-th. */
ATTNFORGE_API int attnforge_variant_count(void);
ATTNFORGE_API const char* attnforge_variant_name(int i);


/* ---- Estimates (autotune, issue 5) ---------------------------------------------------------
 * What each backend would need for a call, without running it: the numbers the selector uses
 * (AUTO's memory_budget bounds scratch_bytes). Tensors' data may be NULL here: only shapes,
 * strides, dtypes and the mask are read. */
typedef struct attnforge_backend_estimate {
  attnforge_backend backend;
  int32_t available;        /* 1: a compiled variant runs this call; 0: see reason */
  char variant[96];         /* the variant the backend would use (first that fits) */
  char reason[256];         /* why not available ("" when available) */
  size_t workspace_bytes;   /* exact scratch of that variant (attnforge_workspace_size) */
  size_t scratch_bytes;     /* all the call allocates: workspace + library temporaries */
  size_t device_bytes;      /* the caller's tensors read or written + scratch_bytes */
  double flops;             /* 4*B*Hq*D*(visible pairs) forward, x2.5 backward */
  int32_t kernel_launches;  /* kernels and memsets enqueued */
} attnforge_backend_estimate;

/* Fills out[0..min(capacity, 3)) with one estimate per backend (unfused, fused, flash) and sets
 * *count. Invalid args: the status of validation, its message in out[0].reason if capacity > 0. */
ATTNFORGE_API attnforge_status attnforge_estimate(const attnforge_args* args, int is_backward,
                                                  attnforge_backend_estimate* out, int capacity,
                                                  int* count);

#ifdef __cplusplus
}
#endif
#endif /* ATTNFORGE_ATTNFORGE_H */
