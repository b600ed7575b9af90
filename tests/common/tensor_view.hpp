// attnforge_tensor views of test memory (host or device): contiguous, row-major sizes and strides in
// elements, as a caller passes a freshly allocated tensor.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "attnforge/attention.hpp"

namespace attnforge::test {

// A contiguous view of `data` with these sizes: the last dim has stride 1, each other dim the
// product of the sizes after it.
inline attnforge_tensor contiguous_tensor(void* data, attnforge_dtype dtype, std::initializer_list<int64_t> sizes) {
  return attnforge::Tensor(data, dtype, sizes).c();  // the C++ API's contiguous view
}

}  // namespace attnforge::test
