// libFuzzer target: the tune-cache parser. Random bytes (seeded with a valid cache file, see
// scripts/fuzz.sh) go through tune::parse — and every 64th input through tune::load from a real
// file — and must never crash (ASan/UBSan watch), and always end as a miss or a valid load:
//   ok ⇒ every entry names a compiled variant and its key prints and re-parses to itself;
//   anything else ⇒ no entries and a reason. tune::Key::parse of the raw bytes round-trips too.
// ATTNFORGE_FUZZ_WRITE_SEED=<path> writes a valid cache file for the expected metadata and exits.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tune_cache.hpp"
#include "variant_key.hpp"

#define FUZZ_CHECK(cond, ...)                                 \
  do {                                                        \
    if (!(cond)) {                                            \
      std::fprintf(stderr, "fuzz check failed: %s: ", #cond); \
      std::fprintf(stderr, __VA_ARGS__);                      \
      std::fprintf(stderr, "\n");                             \
      std::abort();                                           \
    }                                                         \
  } while (0)

namespace {

using namespace attnforge;

// What this "build on this GPU" expects (the parser compares a file's metadata against it).
const tune::Metadata& expected() {
  static const tune::Metadata m = [] {
    tune::Metadata x;
    x.library_version = tune::library_version();
    x.manifest_hash = manifest_hash();
    x.device = {"NVIDIA H100 80GB HBM3", 9, 0, 132, 13000, 13000};
    return x;
  }();
  return m;
}

bool exists(std::string_view name) { return find_variant(name) != nullptr; }

std::string scratch_path() {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/attnforge-fuzz-tune-" + std::to_string(::getpid()) + ".json";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tune::set_warning_sink([](const std::string&) {});  // load() warns once per process: keep the log quiet
  std::atexit([] { std::remove(scratch_path().c_str()); });  // the file the load path writes (below)
  if (const char* seed = std::getenv("ATTNFORGE_FUZZ_WRITE_SEED")) {
    tune::Entries entries;
    const auto all = all_variants();
    for (size_t i = 0; i < all.size() && i < 4; ++i) {
      tune::Entry e;
      e.winner = all[i].name;
      e.times_ms[all[i].name] = 0.25 + double(i);
      if (i + 1 < all.size()) e.rejected[all[i + 1].name] = "slower";
      const tune::Key k = tune::Key::of(all[i].key.direction, all[i].key.dtype, 1 << i, 512, 1024, 16, 4,
                                        all[i].key.head_dim ? all[i].key.head_dim : 64,
                                        mask_name(all[i].key.mask_id));
      entries[k] = e;
    }
    const tune::SaveResult r = tune::save_merged(seed, expected(), entries, exists, true);
    std::fprintf(stderr, "seed %s: %s\n", seed, r.message.c_str());
    std::exit(r.ok ? 0 : 1);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto check = [](const tune::LoadResult& r, const char* how) {
    if (r.status == tune::LoadStatus::ok) {
      for (const auto& [key, entry] : r.entries) {
        FUZZ_CHECK(exists(entry.winner), "%s: ok load kept unknown winner '%s'", how, entry.winner.c_str());
        const auto again = tune::Key::parse(key.str());
        FUZZ_CHECK(again && *again == key, "%s: key '%s' does not round-trip", how, key.str().c_str());
      }
    } else {
      FUZZ_CHECK(r.entries.empty(), "%s: %s result with %zu entries", how, tune::to_string(r.status), r.entries.size());
      FUZZ_CHECK(!r.detail.empty(), "%s: %s result without a reason", how, tune::to_string(r.status));
      FUZZ_CHECK(r.status != tune::LoadStatus::no_file, "%s: parse says no file", how);
    }
  };
  check(tune::parse(text, expected(), exists), "parse");

  if (size > 0 && data[0] % 64 == 0) {  // the file path too: read_file's limits and errors
    static const std::string path = scratch_path();
    if (FILE* f = std::fopen(path.c_str(), "wb")) {
      std::fwrite(data, 1, size, f);
      std::fclose(f);
      check(tune::load(path, expected(), exists), "load");
    }
  }

  if (const auto k = tune::Key::parse(text)) {
    const auto again = tune::Key::parse(k->str());
    FUZZ_CHECK(again && *again == *k, "Key::parse('%.*s') -> '%s' does not round-trip", int(size), text.data(),
               k->str().c_str());
  }
  return 0;
}
