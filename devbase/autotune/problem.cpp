// TuneShape → attnforge_args, and the compiled variants that can run a shape.
#include "problem.hpp"

#include <fnmatch.h>

#include <cstdint>
#include <initializer_list>

namespace attnforge::tuner {

namespace {

const char* dir_name(bool bwd) { return bwd ? "bwd" : "fwd"; }
const char* dtype_name(attnforge_dtype t) {
  switch (t) {
    case ATTNFORGE_F32: return "f32";
    case ATTNFORGE_F16: return "f16";
    case ATTNFORGE_BF16: return "bf16";
    default: return "?";
  }
}

// A contiguous dense tensor of the given sizes.
attnforge_tensor tensor(void* data, attnforge_dtype t, std::initializer_list<int64_t> sizes) {
  attnforge_tensor x{};
  x.data = data;
  x.dtype = t;
  x.rank = int(sizes.size());
  int i = 0;
  for (int64_t s : sizes) x.sizes[i++] = s;
  int64_t stride = 1;
  for (int d = x.rank - 1; d >= 0; --d) x.strides[d] = stride, stride *= x.sizes[d];
  return x;
}

}  // namespace

bool mask_reads_tensor(const std::string& mask) { return mask == "bias"; }

Extents extents(const TuneShape& s) {
  Extents e{};
  e.q = size_t(s.batch) * s.seqlen_q * s.heads_q * s.head_dim;
  e.kv = size_t(s.batch) * s.seqlen_k * s.heads_kv * s.head_dim;
  e.lse = size_t(s.batch) * s.heads_q * s.seqlen_q;
  e.bias = mask_reads_tensor(s.mask) ? size_t(s.seqlen_q) * s.seqlen_k : 0;
  return e;
}

attnforge_args make_args(const TuneShape& s, const CallTensors& t) {
  attnforge_args a;
  attnforge_args_init(&a);
  const attnforge_dtype dt = s.dtype;
  a.q = tensor(t.q, dt, {s.batch, s.seqlen_q, s.heads_q, s.head_dim});  // (B, Sq, Hq, D)
  a.k = tensor(t.k, dt, {s.batch, s.seqlen_k, s.heads_kv, s.head_dim});  // (B, Sk, Hkv, D)
  a.v = tensor(t.v, dt, {s.batch, s.seqlen_k, s.heads_kv, s.head_dim});
  a.o = tensor(t.o, dt, {s.batch, s.seqlen_q, s.heads_q, s.head_dim});
  if (t.lse) a.lse = tensor(t.lse, ATTNFORGE_F32, {s.batch, s.heads_q, s.seqlen_q});  // (B, Hq, Sq)
  if (s.backward) {
    a.d_o = tensor(t.d_o, dt, {s.batch, s.seqlen_q, s.heads_q, s.head_dim});
    a.dq = tensor(t.dq, dt, {s.batch, s.seqlen_q, s.heads_q, s.head_dim});
    a.dk = tensor(t.dk, dt, {s.batch, s.seqlen_k, s.heads_kv, s.head_dim});
    a.dv = tensor(t.dv, dt, {s.batch, s.seqlen_k, s.heads_kv, s.head_dim});
  }
  a.mask.kind = s.mask.c_str();
  for (int i = 0; i < ATTNFORGE_MAX_MASK_SCALARS; ++i) a.mask.scalars[i] = s.scalars[size_t(i)];
  if (mask_reads_tensor(s.mask)) {
    // Additive bias in the dtype of q, (1, 1, Sq, Sk): broadcast over batch and heads.
    a.mask.bias = tensor(t.bias, dt, {1, 1, s.seqlen_q, s.seqlen_k});
  }
  return a;
}

attnforge_args make_fake_args(const TuneShape& s) {
  void* fake = reinterpret_cast<void*>(uintptr_t(1) << 40);  // never dereferenced
  CallTensors t;
  t.q = t.k = t.v = t.o = t.d_o = t.dq = t.dk = t.dv = t.bias = fake;
  t.lse = static_cast<float*>(fake);
  return make_args(s, t);
}

std::vector<Candidate> enumerate_candidates(const TuneShape& s, const std::string& filter) {
  // Canonical names: {backend}_{fwd|bwd}_{dtype}_hd{D|any}_{mask}_{tile}[_sm90a]; the mask may
  // itself contain '_' (user kinds), the tile and the arch tag never do.
  const std::string dir = dir_name(s.backward), dt = dtype_name(s.dtype);
  const std::string hd = "hd" + std::to_string(s.head_dim);
  std::vector<Candidate> out;
  attnforge_args a = make_fake_args(s);
  for (int i = 0; i < attnforge_variant_count(); ++i) {
    const std::string name = attnforge_variant_name(i);
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t p = name.find('_'); p != std::string::npos; p = name.find('_', start)) {
      parts.push_back(name.substr(start, p - start));
      start = p + 1;
    }
    parts.push_back(name.substr(start));
    if (parts.size() > 6 && parts.back() == "sm90a") parts.pop_back();  // the arch tag
    if (parts.size() < 6 || parts[1] != dir || parts[2] != dt) continue;
    if (parts[3] != hd && parts[3] != "hdany") continue;
    std::string mask = parts[4];
    for (size_t k = 5; k + 1 < parts.size(); ++k) mask += "_" + parts[k];
    if (mask != s.mask) continue;
    if (!filter.empty() && fnmatch(filter.c_str(), name.c_str(), 0) != 0) continue;
    Candidate c;
    c.name = name;
    c.backend = parts[0];
    a.variant = name.c_str();
    char reason[1024] = {0};
    attnforge_backend chosen{};
    const attnforge_status st =
        attnforge_select_backend(&a, s.backward ? 1 : 0, &chosen, nullptr, 0, reason, sizeof reason);
    c.runnable = st == ATTNFORGE_OK;
    if (!c.runnable) c.why_not = reason;
    if (c.runnable && attnforge_workspace_size(&a, s.backward ? 1 : 0, &c.workspace) != ATTNFORGE_OK) {
      c.runnable = false;
      c.why_not = attnforge_last_error();
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace attnforge::tuner
