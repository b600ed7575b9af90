// Definition of launch<V>: forwards to the backend's Launcher<V> specialisation. Each backend's
// launch.cuh includes this file and specialises Launcher for Variant<its backend, ...>.
#pragma once
#include "variant.hpp"

namespace attnforge {

template <class V>
struct Launcher;  // specialised per backend

template <class V>
attnforge_status launch(const Params& p, cudaStream_t stream) {
  return Launcher<V>::run(p, stream);
}

}  // namespace attnforge
