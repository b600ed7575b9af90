// Scratch memory per call: how many bytes a variant needs for a problem. One function per
// backend, each defined beside its backend's host code (workspace_<backend>.cpp).
#pragma once
#include <cstddef>

#include "attnforge/attnforge.h"
#include "variant_key.hpp"

namespace attnforge {

// Exported for the host tests (tests/host/test_bwd_workspace.cpp).
ATTNFORGE_API size_t workspace_bytes_unfused(const VariantKey& key, const Params& p);
ATTNFORGE_API size_t workspace_bytes_fused(const VariantKey& key, const Params& p);
ATTNFORGE_API size_t workspace_bytes_flash(const VariantKey& key, const Params& p);

// SMs of the current device (cached; 0 where no device answers). The C API and the estimates fill
// Params::num_sms with it before sizing a workspace: the flash forward's split last round depends on it.
int current_device_sms();

inline size_t workspace_bytes(const VariantKey& key, const Params& p) {
  switch (key.backend) {
    case Backend::unfused: return workspace_bytes_unfused(key, p);
    case Backend::fused: return workspace_bytes_fused(key, p);
    case Backend::flash: return workspace_bytes_flash(key, p);
  }
  return 0;
}

}  // namespace attnforge
