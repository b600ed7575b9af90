// GPU presence, the device's SM count and CUDA error checks for tests: ATTNFORGE_REQUIRE_GPU() skips a test visibly
// ("no CUDA device") on machines without one; ATTNFORGE_TEST_CUDA throws on any CUDA failure.
#pragma once
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace attnforge::test {

// True when the CUDA runtime sees at least one device (cached after the first call).
bool has_cuda_device();

// The current device's compute-capability major (9: Hopper), 0 without a device.
int device_cc_major();

// The current device's SM count (throws on a CUDA failure).
int device_sms();

// Throws std::runtime_error("<what> failed: <error>") when e is not cudaSuccess.
void check_cuda(cudaError_t e, const char* what);

}  // namespace attnforge::test

#define ATTNFORGE_TEST_CUDA(call) ::attnforge::test::check_cuda((call), #call)

// First statement of every GPU test.
#define ATTNFORGE_REQUIRE_GPU()                                         \
  do {                                                                  \
    if (!::attnforge::test::has_cuda_device()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)
