// The tune cache: the autotuner's measurements on disk (JSON, nlohmann-json), keyed by problem
// bucket, with the metadata that says for which GPU and which build they hold. Loading never
// throws and never crashes; saving is atomic (temp file + fsync + rename) and merges with the file
// already there under an flock'd lock file, so concurrent tuners neither corrupt it nor lose entries.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/variant.hpp"

// Exported (ATTNFORGE_API) because the tuner and the host tests link this internal API from
// libattnforge.so, which hides everything else.

namespace attnforge::tune {

// Bump when the file layout changes; a file of another schema is a soft mismatch (rewritten).
constexpr int kSchemaVersion = 1;

// The GPU and software stack the timings were taken on.
struct DeviceInfo {
  std::string name;              // cudaDeviceProp::name, e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;  // compute capability
  int sm_count = 0;
  int cuda_runtime = 0;          // cudaRuntimeGetVersion, e.g. 13000
  int cuda_driver = 0;           // cudaDriverGetVersion
  friend bool operator==(const DeviceInfo&, const DeviceInfo&) = default;
};

struct Metadata {
  int schema_version = kSchemaVersion;
  std::string library_version;  // "0.1.0"
  std::string manifest_hash;    // manifest_hash() of the build that tuned
  DeviceInfo device;
  friend bool operator==(const Metadata&, const Metadata&) = default;
};

// Metadata of `device` for this build (library version, manifest hash, CUDA versions).
// nullopt when there is no usable CUDA device: then no cache applies.
ATTNFORGE_API std::optional<Metadata> current_metadata(int device);
// The library version string the cache records ("MAJOR.MINOR.PATCH" from attnforge.h).
ATTNFORGE_API std::string library_version();

// Sizes are bucketed to the smallest power of two ≥ n (n ≤ 1 → 1): a bucket holds (b/2, b].
ATTNFORGE_API int bucket(int64_t n);

// One tuned problem class: (direction, dtype, Hq, Hkv, D, mask kind, Sq, Sk, B buckets).
struct ATTNFORGE_API Key {
  Direction direction = Direction::fwd;
  DType dtype = DType::bf16;
  int heads_q = 0, heads_kv = 0, head_dim = 0;
  std::string mask;  // mask kind by canonical name ("causal"), stable across builds
  int sq_bucket = 0, sk_bucket = 0, b_bucket = 0;

  // The key of a concrete problem (sizes get bucketed).
  static Key of(Direction d, DType t, int64_t batch, int64_t seqlen_q, int64_t seqlen_k,
                int heads_q, int heads_kv, int head_dim, std::string mask);
  // Printable and JSON form: "fwd|bf16|hq16|hkv16|d128|causal|sq4096|sk4096|b8".
  std::string str() const;
  static std::optional<Key> parse(std::string_view s);
  // Same class except for the three size buckets (the nearest-bucket search stays inside it).
  bool same_class(const Key& o) const;
  // Distance between size buckets in log2 steps: |Δlog2 Sq| + |Δlog2 Sk| + |Δlog2 B|.
  int bucket_distance(const Key& o) const;
  friend auto operator<=>(const Key&, const Key&) = default;
};

// What the tuner measured for one key.
struct Entry {
  std::string winner;                            // canonical variant name
  std::map<std::string, double> times_ms;        // every timed candidate → median ms
  std::map<std::string, std::string> rejected;   // candidates never chosen → why (numerics, error)
  friend bool operator==(const Entry&, const Entry&) = default;
};

using Entries = std::map<Key, Entry>;
// Does this build have a variant of that name? (the runtime passes find_variant).
using VariantExists = std::function<bool(std::string_view)>;

enum class LoadStatus {
  ok,             // metadata matches: entries usable
  no_file,        // nothing there (not a warning)
  hard_mismatch,  // other GPU or other manifest hash: ignored, never overwritten by save
  soft_mismatch,  // missing / unknown / other-version metadata: ignored, replaced by next save
  corrupt,        // unreadable, not JSON, not UTF-8, truncated, wrong shape: a miss, one warning
};
ATTNFORGE_API const char* to_string(LoadStatus s);

struct LoadResult {
  LoadStatus status = LoadStatus::no_file;
  std::string detail;    // human-readable why (goes into selection reasons)
  Entries entries;       // only for ok; entries naming unknown variants already dropped
  int dropped = 0;       // entries dropped (unknown variant or malformed)
};

// Reads and classifies the file at `path` against `expected`. Never throws. Warns (once per
// process, see warn_once) on a corrupt file or on dropped entries.
ATTNFORGE_API LoadResult load(const std::string& path, const Metadata& expected, const VariantExists& exists);
// The same on text already in memory (the fuzzer and tests use it; no warning is printed).
ATTNFORGE_API LoadResult parse(std::string_view text, const Metadata& expected, const VariantExists& exists);

// The metadata a cache text declares (absent fields left empty / 0); nullopt if it is not a JSON
// object. Offline analysis (attnforge-tune --analyze) reads another machine's cache with it.
ATTNFORGE_API std::optional<Metadata> read_metadata(std::string_view text);

struct SaveResult {
  bool ok = false;
  std::string message;  // why not, or what was done ("merged 3 new entries into 41 ...")
  size_t total_entries = 0;
};

// Under an exclusive flock on `path + ".lock"`: read the file, keep its entries when its metadata
// matches `meta` (a soft mismatch or corrupt file is replaced; a hard mismatch is left untouched
// and the save refused unless `overwrite_foreign`), add `fresh` (fresh wins per key), and write it
// back atomically: temp file in the same directory, fsync, rename over, fsync the directory.
// Creates missing parent directories. Never throws.
ATTNFORGE_API SaveResult save_merged(const std::string& path, const Metadata& meta, const Entries& fresh,
                       const VariantExists& exists, bool overwrite_foreign = false);

// Where the cache lives: $ATTNFORGE_TUNE_CACHE, else $XDG_CACHE_HOME/attnforge/tune.json, else
// $HOME/.cache/attnforge/tune.json; "" when none of these is set.
ATTNFORGE_API std::string default_path();

// The one-warning-per-process channel: the first call prints "attnforge: warning: <msg>" to
// stderr (or hands it to the sink); later calls are counted and dropped.
ATTNFORGE_API void warn_once(const std::string& message);
ATTNFORGE_API int warnings_suppressed();
ATTNFORGE_API void set_warning_sink(std::function<void(const std::string&)> sink);  // null = stderr
ATTNFORGE_API void reset_warning_for_testing();

// Nearest entry to `key` among `entries` of the same class: the exact key if present, else the
// smallest bucket_distance (ties: the larger buckets, then the first in key order). null if none.
ATTNFORGE_API const std::pair<const Key, Entry>* nearest(const Entries& entries, const Key& key);

}  // namespace attnforge::tune
