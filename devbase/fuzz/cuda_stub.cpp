// The fuzz build's CUDA runtime and cuBLAS: no GPU, no driver. Queries answer "no device"; anything
// that would allocate device memory, enqueue work or create a cuBLAS handle aborts, because the
// fuzzers only reach it if an input got past validation and selection into a launch.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>

namespace {
[[noreturn]] void reached(const char* fn) {
  std::fprintf(stderr, "fuzz: %s was called: an input reached device work\n", fn);
  std::abort();
}
}  // namespace

extern "C" {
// ---- queries: no device ------------------------------------------------------------------------
cudaError_t CUDARTAPI cudaGetDevice(int* device) {
  if (device) *device = 0;
  return cudaErrorNoDevice;
}
cudaError_t CUDARTAPI cudaGetDeviceCount(int* count) {
  if (count) *count = 0;
  return cudaErrorNoDevice;
}
cudaError_t CUDARTAPI cudaDeviceGetAttribute(int* value, cudaDeviceAttr, int) {
  if (value) *value = 0;
  return cudaErrorNoDevice;
}
cudaError_t CUDARTAPI cudaGetDeviceProperties(cudaDeviceProp*, int) { return cudaErrorNoDevice; }
cudaError_t CUDARTAPI cudaDriverGetVersion(int* v) {
  if (v) *v = 0;
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaRuntimeGetVersion(int* v) {
  if (v) *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaGetLastError(void) { return cudaSuccess; }
cudaError_t CUDARTAPI cudaPeekAtLastError(void) { return cudaSuccess; }
const char* CUDARTAPI cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "stubbed CUDA error"; }
const char* CUDARTAPI cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorStub"; }

// ---- device work: must never be reached from the fuzzers -----------------------------------------
cudaError_t CUDARTAPI cudaMalloc(void**, size_t) { reached("cudaMalloc"); }
cudaError_t CUDARTAPI cudaFree(void*) { reached("cudaFree"); }
cudaError_t CUDARTAPI cudaMallocAsync(void**, size_t, cudaStream_t) { reached("cudaMallocAsync"); }
cudaError_t CUDARTAPI cudaFreeAsync(void*, cudaStream_t) { reached("cudaFreeAsync"); }
cudaError_t CUDARTAPI cudaMallocFromPoolAsync(void**, size_t, cudaMemPool_t, cudaStream_t) {
  reached("cudaMallocFromPoolAsync");
}
cudaError_t CUDARTAPI cudaMemPoolCreate(cudaMemPool_t*, const cudaMemPoolProps*) { reached("cudaMemPoolCreate"); }
cudaError_t CUDARTAPI cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) {
  reached("cudaMemPoolSetAttribute");
}
cudaError_t CUDARTAPI cudaMemsetAsync(void*, int, size_t, cudaStream_t) { reached("cudaMemsetAsync"); }
cudaError_t CUDARTAPI cudaStreamSynchronize(cudaStream_t) { reached("cudaStreamSynchronize"); }
cudaError_t CUDARTAPI cudaLaunchKernel(const void*, dim3, dim3, void**, size_t, cudaStream_t) {
  reached("cudaLaunchKernel");
}

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t*) { reached("cublasCreate"); }
cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t) { reached("cublasDestroy"); }
cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t, cudaStream_t) { reached("cublasSetStream"); }
const char* CUBLASWINAPI cublasGetStatusString(cublasStatus_t) { return "stubbed cuBLAS status"; }
}
