// Validation of attnforge_args before anything is launched, and construction of the kernels'
// Params from them. Host-only; never reads device memory (cu_seqlens stay on the device).
#pragma once
#include <string>

#include "attnforge/attnforge.h"
#include "select.hpp"

namespace attnforge {

// The validated call: what kernels see (params) and what the selector sees (problem).
// params.lse may be null in forward when the caller passed none (the C API supplies a temporary);
// params.workspace, num_sms and cublas_handle are filled by the C API after selection.
struct ValidatedCall {
  Params params{};
  Problem problem{};
  bool lse_supplied = false;  // forward: the caller passed an LSE tensor
};

// Checks every argument of a forward (dir == fwd) or backward call. On success returns
// ATTNFORGE_OK and fills `out`; otherwise returns ATTNFORGE_INVALID_ARGUMENT (or
// ATTNFORGE_UNSUPPORTED for a valid but unsupported combination) and sets `error` to a message
// naming the argument and the values, e.g. "expected q and k to have the same dtype, got bf16 and f16".
attnforge_status validate_args(const attnforge_args& args, Direction dir, ValidatedCall& out, std::string& error);

// Bytes of the library-supplied LSE (forward without a caller LSE): fp32 (B, Hq, Sq) or (Hq, total_q).
size_t temporary_lse_bytes(const Params& p);
// Points p.lse at a contiguous temporary of temporary_lse_bytes(p) bytes and sets its strides.
void use_temporary_lse(Params& p, float* lse);

const char* dtype_string(int t);  // attnforge_dtype → "f32", "f16", "bf16", "bool", or "dtype(<n>)"

}  // namespace attnforge
