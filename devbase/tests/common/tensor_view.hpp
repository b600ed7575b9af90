// attnforge_tensor views of test memory (host or device): contiguous, row-major sizes and strides in
// elements, as a caller passes a freshly allocated tensor.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "attnforge/attnforge.h"

namespace attnforge::test {

// A contiguous view of `data` with these sizes: the last dim has stride 1, each other dim the
// product of the sizes after it.
inline attnforge_tensor contiguous_tensor(void* data, attnforge_dtype dtype, std::initializer_list<int64_t> sizes) {
  attnforge_tensor t{};
  t.data = data, t.dtype = dtype, t.rank = int32_t(sizes.size());
  int i = 0;
  for (int64_t s : sizes) t.sizes[i++] = s;
  int64_t stride = 1;
  for (int d = t.rank - 1; d >= 0; --d) t.strides[d] = stride, stride *= t.sizes[d];
  return t;
}

}  // namespace attnforge::test
