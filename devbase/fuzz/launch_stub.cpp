// The fuzz build's kernels: launch<V> for every variant of the generated set aborts. Validation
// and selection must never get there with the fuzzers' inputs (the fuzzers call forward/backward
// only where no device exists, so even a valid call must stop before any launch).
#include <cstdio>
#include <cstdlib>

#include "common/variant.hpp"
#include "variants.hpp"

namespace attnforge {

template <class V>
attnforge_status launch(const Params&, cudaStream_t) {
  std::fprintf(stderr, "fuzz: a kernel launch was reached\n");
  std::abort();
}

namespace {
// Taking each launch<V>'s address instantiates it here for dispatch.cpp's table.
template <class... Vs>
void* const* instances(TypeList<Vs...>*) {
  static void* const table[] = {reinterpret_cast<void*>(&launch<Vs>)...};
  return table;
}
}  // namespace

void* const* fuzz_launch_stubs() { return instances(static_cast<generated::AllVariants*>(nullptr)); }

}  // namespace attnforge
