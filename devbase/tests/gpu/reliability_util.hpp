// Shared by the reliability suites (test_sweep.cpp, test_edge_cases.cpp): strided views into
// device buffers (any offset, any strides), gather/scatter between a buffer and its logical
// row-major contents, the numerics rule on logical tensors, and the "untouched bytes" check that
// proves a kernel wrote nothing outside its output view (buffers start poisoned with 0xFF).
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "attnforge/attnforge.h"
#include "attention_case.hpp"
#include "device_buffer.hpp"
#include "gpu.hpp"

namespace attnforge::reliability {

using attnforge::test::DeviceBuffer;

// A tensor inside a buffer: element offset of element 0, sizes and element strides.
struct View {
  int64_t offset = 0;
  int rank = 0;
  int64_t sizes[4] = {0, 0, 0, 0};
  int64_t strides[4] = {0, 0, 0, 0};

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= sizes[i];
    return n;
  }
  // One past the largest element offset (the buffer must hold at least this many elements).
  int64_t extent() const {
    int64_t e = offset;
    for (int i = 0; i < rank; ++i) e += (sizes[i] - 1) * strides[i];
    return e + 1;
  }
};

inline View make_view(std::initializer_list<int64_t> sizes, std::initializer_list<int64_t> strides, int64_t offset = 0) {
  View v;
  v.offset = offset;
  v.rank = int(sizes.size());
  int i = 0;
  for (int64_t s : sizes) v.sizes[i++] = s;
  i = 0;
  for (int64_t s : strides) v.strides[i++] = s;
  return v;
}

inline View contiguous_view(std::initializer_list<int64_t> sizes, int64_t offset = 0) {
  View v;
  v.offset = offset;
  v.rank = int(sizes.size());
  int i = 0;
  for (int64_t s : sizes) v.sizes[i++] = s;
  int64_t stride = 1;
  for (int d = v.rank - 1; d >= 0; --d) v.strides[d] = stride, stride *= v.sizes[d];
  return v;
}

// The C-API tensor of a view into `base` (a device pointer to element 0 of the buffer).
inline attnforge_tensor tensor_of(const void* base, attnforge_dtype dtype, const View& v) {
  attnforge_tensor t{};
  t.data = static_cast<char*>(const_cast<void*>(base)) + v.offset * int64_t(attnforge::test::dtype_size(dtype));
  t.dtype = dtype;
  t.rank = v.rank;
  for (int i = 0; i < v.rank; ++i) t.sizes[i] = v.sizes[i], t.strides[i] = v.strides[i];
  return t;
}
inline attnforge_tensor tensor_of(const DeviceBuffer& b, attnforge_dtype dtype, const View& v) {
  return tensor_of(b.get(), dtype, v);
}

// Element offsets (view.offset included) of every logical element, in row-major order of the sizes.
inline std::vector<int64_t> view_offsets(const View& v) {
  std::vector<int64_t> out;
  out.reserve(size_t(v.numel()));
  int64_t idx[4] = {0, 0, 0, 0};
  for (int64_t e = 0, n = v.numel(); e < n; ++e) {
    int64_t off = v.offset;
    for (int i = 0; i < v.rank; ++i) off += idx[i] * v.strides[i];
    out.push_back(off);
    for (int i = v.rank - 1; i >= 0; --i) {
      if (++idx[i] < v.sizes[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

inline std::vector<double> gather(const std::vector<double>& buf, const View& v) {
  std::vector<double> out;
  out.reserve(size_t(v.numel()));
  for (int64_t off : view_offsets(v)) out.push_back(buf[size_t(off)]);
  return out;
}
inline void scatter(std::vector<double>& buf, const View& v, const std::vector<double>& logical) {
  const auto offs = view_offsets(v);
  for (size_t e = 0; e < offs.size(); ++e) buf[size_t(offs[e])] = logical[e];
}

// DESIGN.md's numerics rule (tests/common numerics_rule, with dtype's half-ulp floor) on logical
// tensors; appends one line to `log` and returns whether it passed.
inline bool numerics_rule(std::ostringstream& log, const char* name, const View& shape, attnforge_dtype dtype,
                          const std::vector<double>& out, const std::vector<double>& ref,
                          const std::vector<double>& lowp, double factor, double abs_tol = 1e-5) {
  const attnforge::test::RuleCheck c =
      attnforge::test::numerics_rule(out, ref, lowp, factor, abs_tol, attnforge::test::significand_bits(dtype));
  attnforge::test::log_rule(log, name, c, out, ref, shape.rank, shape.sizes);
  return c.ok;
}

// Raw bytes of a device buffer.
inline std::vector<uint8_t> download_bytes(const DeviceBuffer& b) {
  std::vector<uint8_t> out(b.bytes());
  ATTNFORGE_TEST_CUDA(cudaMemcpy(out.data(), b.get(), b.bytes(), cudaMemcpyDeviceToHost));
  return out;
}

// Counts the elements of a poisoned buffer (0xFF bytes) outside `views` that are no longer
// poison: writes outside an output view. Returns 0 when nothing outside was touched.
inline size_t touched_outside(const std::vector<uint8_t>& bytes, size_t elem_size, const std::vector<View>& views,
                              int64_t* first = nullptr) {
  std::vector<char> inside(bytes.size() / elem_size, 0);
  for (const View& v : views)
    for (int64_t off : view_offsets(v)) inside[size_t(off)] = 1;
  size_t n = 0;
  for (size_t e = 0; e < inside.size(); ++e) {
    if (inside[e]) continue;
    for (size_t b = 0; b < elem_size; ++b)
      if (bytes[e * elem_size + b] != 0xFF) {
        if (n == 0 && first) *first = int64_t(e);
        ++n;
        break;
      }
  }
  return n;
}

// Host doubles of a whole buffer where every element is NaN (so that a kernel reading padding
// or another tensor's bytes by mistake produces NaN), then `logical` written into `v`.
inline void fill_nan(std::vector<double>& buf) {
  std::fill(buf.begin(), buf.end(), std::numeric_limits<double>::quiet_NaN());
}

}  // namespace attnforge::reliability
