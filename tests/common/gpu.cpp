// has_cuda_device / device_cc_major / device_sms / check_cuda (gpu.hpp).
#include "gpu.hpp"

namespace attnforge::test {

bool has_cuda_device() {
  static const bool present = [] {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) (void)cudaGetLastError();  // no driver / no device: not sticky
    return e == cudaSuccess && n > 0;
  }();
  return present;
}

int device_sms() {
  int dev = 0, sms = 0;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute(SMs)");
  return sms;
}

int device_cc_major() {
  int dev = 0, major = 0;
  if (!has_cuda_device() || cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return major;
}

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + " failed: " + cudaGetErrorName(e) + " (" +
                                                 cudaGetErrorString(e) + ")");
}

}  // namespace attnforge::test
