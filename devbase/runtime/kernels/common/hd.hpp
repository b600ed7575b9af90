// Host/device qualifiers shared by code that both nvcc and the host compiler see (masks, params).
#pragma once
#if defined(__CUDACC__)
#define ATTNFORGE_HD __host__ __device__ __forceinline__
#else
#define ATTNFORGE_HD inline
#endif
