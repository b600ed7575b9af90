// The compiled-variant table: built at compile time with Boost.Hana from generated::AllVariants
// (generated/variants.hpp) and generated::mask::MaskList (generated/masks.hpp). The ONLY
// translation unit that sees Hana; it is compiled by the host compiler and only takes the address
// of launch<V>, whose definitions live in the generated .cu files.
#include <boost/hana.hpp>

#include <algorithm>
#include <array>
#include <string>
#include <string_view>

#include "masks.hpp"
#include "variant_key.hpp"
#include "variants.hpp"

namespace attnforge {
namespace hana = boost::hana;

namespace {

// ---- TypeList<...> → hana::tuple_t<...> ---------------------------------------------------------
template <class List>
struct as_hana;
template <class... Ts>
struct as_hana<TypeList<Ts...>> {
  static constexpr auto value = hana::tuple_t<Ts...>;
};

constexpr auto kVariants = as_hana<generated::AllVariants>::value;  // hana::tuple of hana::type<V>
constexpr auto kMasks = as_hana<generated::mask::MaskList>::value;

constexpr std::size_t kNumVariants = hana::length(kVariants);
constexpr std::size_t kNumMasks = hana::length(kMasks);

// MaskList position == kId (ids index the runtime tables below and Params users).
static_assert(hana::unpack(hana::make_range(hana::size_c<0>, hana::size_c<kNumMasks>),
                          [](auto... i) {
                            return ((decltype(+kMasks[i])::type::kId == int(decltype(i)::value)) && ...);
                          }),
              "generated::mask::MaskList: kId must equal the position in the list");

// ---- canonical names, derived from the key (same rule as codegen/variant.py) ------------------
// {backend}_{fwd|bwd}_{dtype}_hd{D|any}_{mask}_{m..n..w..s..}, zero tile parts omitted.
constexpr const char* backend_name(Backend b) {
  switch (b) {
    case Backend::unfused: return "unfused";
    case Backend::fused: return "fused";
    case Backend::flash: return "flash";
  }
  return "?";
}
constexpr const char* direction_name(Direction d) { return d == Direction::fwd ? "fwd" : "bwd"; }
constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
  }
  return "?";
}

struct FixedName {
  char s[128] = {};
  int len = 0;
  constexpr void put(const char* p) {
    while (*p) s[len++] = *p++;
  }
  constexpr void put(int v) {
    char tmp[12] = {};
    int n = 0;
    do {
      tmp[n++] = char('0' + v % 10);
      v /= 10;
    } while (v > 0);
    while (n > 0) s[len++] = tmp[--n];
  }
  constexpr std::string_view view() const { return {s, std::size_t(len)}; }
};

template <class V>
constexpr VariantKey key_of() {
  using T = typename V::TileT;
  return VariantKey{V::kBackend, V::kDirection, V::kDType, V::kHeadDim, V::Mask::kId,
                    T::kBlockM,  T::kBlockN,    T::kWarps, T::kStages, T::kArch};
}

constexpr FixedName make_name(const VariantKey& k, const char* mask) {
  FixedName n;
  n.put(backend_name(k.backend));
  n.put("_");
  n.put(direction_name(k.direction));
  n.put("_");
  n.put(dtype_name(k.dtype));
  n.put("_hd");
  if (k.head_dim == kHeadDimAny) n.put("any"); else n.put(k.head_dim);
  n.put("_");
  n.put(mask);
  const int parts[4] = {k.block_m, k.block_n, k.warps, k.stages};
  const char* tags[4] = {"m", "n", "w", "s"};
  bool first = true;
  for (int i = 0; i < 4; ++i) {
    if (parts[i] == 0) continue;
    if (first) n.put("_");
    first = false;
    n.put(tags[i]);
    n.put(parts[i]);
  }
  if (k.arch != 0) {
    n.put("_sm");
    n.put(k.arch);
    n.put("a");
  }
  return n;
}

// Static storage per variant for its name (the table stores a pointer to it).
template <class V>
struct NameOf {
  static constexpr FixedName value = make_name(key_of<V>(), V::Mask::kName);
};

// ---- the table -------------------------------------------------------------------------------
constexpr auto make_table() {
  return hana::unpack(kVariants, [](auto... t) {
    return std::array<VariantInfo, sizeof...(t)>{
        VariantInfo{key_of<typename decltype(t)::type>(), NameOf<typename decltype(t)::type>::value.s,
                    &launch<typename decltype(t)::type>}...};
  });
}
constexpr std::array<VariantInfo, kNumVariants> kTable = make_table();

constexpr bool key_less(const VariantKey& a, const VariantKey& b) {
  const int x[10] = {int(a.backend), int(a.direction), int(a.dtype), a.head_dim, a.mask_id,
                     a.block_m,      a.block_n,        a.warps,       a.stages,   a.arch};
  const int y[10] = {int(b.backend), int(b.direction), int(b.dtype), b.head_dim, b.mask_id,
                     b.block_m,      b.block_n,        b.warps,       b.stages,   b.arch};
  for (int i = 0; i < 10; ++i)
    if (x[i] != y[i]) return x[i] < y[i];
  return false;
}

// Sort a copy and look at neighbours: O(N log N) at compile time.
constexpr bool keys_unique() {
  std::array<VariantKey, kNumVariants> keys{};
  for (std::size_t i = 0; i < kNumVariants; ++i) keys[i] = kTable[i].key;
  std::sort(keys.begin(), keys.end(), key_less);
  for (std::size_t i = 1; i < kNumVariants; ++i)
    if (keys[i] == keys[i - 1]) return false;
  return true;
}
constexpr bool names_unique() {
  std::array<std::string_view, kNumVariants> names{};
  for (std::size_t i = 0; i < kNumVariants; ++i) names[i] = kTable[i].name;
  std::sort(names.begin(), names.end());
  for (std::size_t i = 1; i < kNumVariants; ++i)
    if (names[i] == names[i - 1]) return false;
  return true;
}
static_assert(keys_unique(), "generated::AllVariants holds two variants with the same VariantKey");
static_assert(names_unique(), "generated::AllVariants holds two variants with the same name");
static_assert(kNumVariants > 0, "generated::AllVariants is empty");

// Every variant's mask is in MaskList, with the same id.
static_assert(hana::all_of(kVariants, [](auto t) {
  using M = typename decltype(t)::type::Mask;
  return hana::bool_c<(M::kId >= 0 && M::kId < int(kNumMasks))>;
}));

// ---- mask metadata, by id ------------------------------------------------------------------------
struct MaskMeta {
  const char* name;
  int num_scalars;
  bool has_tensor;
};
constexpr std::array<MaskMeta, kNumMasks> kMaskMeta = hana::unpack(kMasks, [](auto... m) {
  return std::array<MaskMeta, sizeof...(m)>{MaskMeta{decltype(m)::type::kName, decltype(m)::type::kNumScalars,
                                                     decltype(m)::type::kHasTensor}...};
});

bool matches(const VariantKey& k, Backend b, Direction d, DType t, int mask_id) {
  return k.backend == b && k.direction == d && k.dtype == t && k.mask_id == mask_id;
}

}  // namespace

// Exported (ATTNFORGE_API) although internal: the host tests link against libattnforge.so.
ATTNFORGE_API std::span<const VariantInfo> all_variants() { return {kTable.data(), kTable.size()}; }

ATTNFORGE_API const VariantInfo* find_variant(std::string_view name) {
  for (const VariantInfo& v : kTable)
    if (name == v.name) return &v;
  return nullptr;
}

ATTNFORGE_API std::vector<const VariantInfo*> candidates(Backend b, Direction d, DType t, int head_dim, int mask_id) {
  std::vector<const VariantInfo*> out;
  // Exact head dim first (specialised code), then the "any head dim" variants; generator order
  // (= tile preference order) inside each group.
  for (const VariantInfo& v : kTable)
    if (matches(v.key, b, d, t, mask_id) && v.key.head_dim == head_dim && head_dim != kHeadDimAny)
      out.push_back(&v);
  for (const VariantInfo& v : kTable)
    if (matches(v.key, b, d, t, mask_id) && v.key.head_dim == kHeadDimAny) out.push_back(&v);
  return out;
}

ATTNFORGE_API std::string describe_missing(Backend b, Direction d, DType t, int head_dim, int mask_id) {
  const char* mname = (mask_id >= 0 && mask_id < int(kNumMasks)) ? kMaskMeta[mask_id].name : "?";
  std::string msg = std::string(to_string(b)) + " has no head_dim " + std::to_string(head_dim) + " for " +
                    to_string(t) + " (" + to_string(d) + ", " + mname + ")";
  // What exists instead: the head dims built for this (direction, dtype, mask).
  std::vector<int> dims;
  bool any = false;
  for (const VariantInfo& v : kTable) {
    if (!matches(v.key, b, d, t, mask_id)) continue;
    if (v.key.head_dim == kHeadDimAny) any = true;
    else if (std::find(dims.begin(), dims.end(), v.key.head_dim) == dims.end()) dims.push_back(v.key.head_dim);
  }
  std::sort(dims.begin(), dims.end());
  if (!dims.empty() || any) {
    msg += "; built: ";
    for (std::size_t i = 0; i < dims.size(); ++i) msg += (i ? ", " : "") + std::to_string(dims[i]);
    if (any) msg += dims.empty() ? "any" : ", any";
    return msg;
  }
  // Nothing for this (direction, dtype, mask): say which of the three is missing.
  auto list = [&](auto&& pick, auto&& label) {
    std::vector<std::string> items;
    for (const VariantInfo& v : kTable) {
      if (!pick(v.key)) continue;
      std::string item = label(v.key);
      if (std::find(items.begin(), items.end(), item) == items.end()) items.push_back(item);
    }
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
    return out;
  };
  const std::string bn = to_string(b);
  const std::string masks = list([&](const VariantKey& k) { return k.backend == b && k.direction == d && k.dtype == t; },
                                 [](const VariantKey& k) { return std::string(kMaskMeta[k.mask_id].name); });
  if (!masks.empty()) return bn + " has no mask " + mname + " for " + to_string(t) + " (" + to_string(d) + "); built: " + masks;
  const std::string dirs = list([&](const VariantKey& k) { return k.backend == b && k.dtype == t; },
                                [](const VariantKey& k) { return std::string(to_string(k.direction)); });
  if (!dirs.empty()) return bn + " has no " + to_string(d) + " variants for " + to_string(t) + "; built: " + dirs;
  const std::string dtypes = list([&](const VariantKey& k) { return k.backend == b; },
                                  [](const VariantKey& k) { return std::string(to_string(k.dtype)); });
  if (!dtypes.empty()) return bn + " has no " + to_string(t) + " variants; built: " + dtypes;
  return bn + " has no compiled variants in this build";
}

ATTNFORGE_API int mask_count() { return int(kNumMasks); }

ATTNFORGE_API int mask_id_by_name(std::string_view name) {
  for (std::size_t i = 0; i < kNumMasks; ++i)
    if (name == kMaskMeta[i].name) return int(i);
  return -1;
}

ATTNFORGE_API const char* mask_name(int id) { return (id >= 0 && id < int(kNumMasks)) ? kMaskMeta[id].name : nullptr; }
ATTNFORGE_API int mask_num_scalars(int id) { return (id >= 0 && id < int(kNumMasks)) ? kMaskMeta[id].num_scalars : 0; }
ATTNFORGE_API bool mask_has_tensor(int id) { return (id >= 0 && id < int(kNumMasks)) && kMaskMeta[id].has_tensor; }

ATTNFORGE_API bool mask_visible(int id, int q_idx, int k_idx, int seqlen_q, int seqlen_k, const MaskScalars& s) {
  bool visible = false;
  // A fold over MaskList: the kind whose kId matches answers with its generated predicate.
  hana::for_each(kMasks, [&](auto m) {
    using M = typename decltype(m)::type;
    if (M::kId == id) visible = M::visible(q_idx, k_idx, seqlen_q, seqlen_k, s);
  });
  return visible;
}

ATTNFORGE_API int max_seqlen_k(const VariantKey& key) {
  // fused keeps the whole key row of a query block on chip: the generator sized block_n to the
  // longest row that fits in shared memory. The other backends stream keys.
  return key.backend == Backend::fused ? key.block_n : 0;
}

ATTNFORGE_API const char* manifest_hash() { return generated::kManifestHash; }

ATTNFORGE_API const char* to_string(Backend b) { return backend_name(b); }
ATTNFORGE_API const char* to_string(Direction d) { return direction_name(d); }
ATTNFORGE_API const char* to_string(DType t) { return dtype_name(t); }

}  // namespace attnforge
