// The tune cache file: JSON layout, metadata classification (ok / hard / soft / corrupt), the
// merge-under-flock atomic save, and the one-warning-per-process channel. See tune_cache.hpp.
#include "tune_cache.hpp"

#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "attnforge/attnforge.h"
#include "variant_key.hpp"

namespace attnforge::tune {

using json = nlohmann::json;

namespace {

constexpr size_t kMaxFileBytes = size_t(64) << 20;  // a bigger "cache" is not ours: corrupt

const char* dir_str(Direction d) { return d == Direction::fwd ? "fwd" : "bwd"; }
const char* dtype_str(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
  }
  return "?";
}
std::optional<Direction> parse_dir(std::string_view s) {
  if (s == "fwd") return Direction::fwd;
  if (s == "bwd") return Direction::bwd;
  return std::nullopt;
}
std::optional<DType> parse_dtype(std::string_view s) {
  if (s == "f32") return DType::f32;
  if (s == "f16") return DType::f16;
  if (s == "bf16") return DType::bf16;
  return std::nullopt;
}
// "hq16" with prefix "hq" → 16; positive ints only.
std::optional<int> parse_field(std::string_view s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return std::nullopt;
  s.remove_prefix(prefix.size());
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}
bool is_pow2(int v) { return v > 0 && (v & (v - 1)) == 0; }
int log2i(int v) {
  int l = 0;
  while (v > 1) v >>= 1, ++l;
  return l;
}
bool valid_mask_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

std::string cc_str(const DeviceInfo& d) {
  return std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor);
}

json to_json(const Metadata& m, const Entries& entries) {
  json j;
  j["schema_version"] = m.schema_version;
  j["library_version"] = m.library_version;
  j["manifest_hash"] = m.manifest_hash;
  j["device"] = {{"name", m.device.name},
                 {"compute_capability", cc_str(m.device)},
                 {"sm_count", m.device.sm_count},
                 {"cuda_runtime", m.device.cuda_runtime},
                 {"cuda_driver", m.device.cuda_driver}};
  json e = json::object();
  for (const auto& [k, v] : entries) {
    json je;
    je["winner"] = v.winner;
    je["times_ms"] = v.times_ms;
    je["rejected"] = v.rejected;
    e[k.str()] = std::move(je);
  }
  j["entries"] = std::move(e);
  return j;
}

// Hard mismatch: the file says (explicitly) another GPU or another build's manifest.
// Soft mismatch: what it says is missing, unknown or of another version.
struct Verdict {
  LoadStatus status;
  std::string detail;
};

Verdict classify(const json& j, const Metadata& want) {
  if (!j.is_object()) return {LoadStatus::corrupt, "top level is not a JSON object"};
  static const std::set<std::string> known_top = {"schema_version", "library_version",
                                                  "manifest_hash", "device", "entries"};
  static const std::set<std::string> known_dev = {"name", "compute_capability", "sm_count",
                                                  "cuda_runtime", "cuda_driver"};
  // A different schema cannot be read field by field: soft, replaced by the next save.
  auto sv = j.find("schema_version");
  if (sv == j.end()) return {LoadStatus::soft_mismatch, "no schema_version"};
  if (!sv->is_number_integer() || sv->get<int64_t>() != want.schema_version)
    return {LoadStatus::soft_mismatch, "schema_version " + sv->dump() + ", this build reads " +
                                           std::to_string(want.schema_version)};
  auto ent = j.find("entries");
  if (ent != j.end() && !ent->is_object())
    return {LoadStatus::corrupt, "\"entries\" is not an object"};

  // Hard: explicit identity that differs.
  auto mh = j.find("manifest_hash");
  auto dev = j.find("device");
  const json* d = (dev != j.end() && dev->is_object()) ? &*dev : nullptr;
  if (d) {
    auto n = d->find("name");
    if (n != d->end() && n->is_string() && n->get<std::string>() != want.device.name)
      return {LoadStatus::hard_mismatch, "tuned on GPU \"" + n->get<std::string>() +
                                             "\", this is \"" + want.device.name + "\""};
    auto cc = d->find("compute_capability");
    if (cc != d->end() && cc->is_string() && cc->get<std::string>() != cc_str(want.device))
      return {LoadStatus::hard_mismatch, "tuned on compute capability " +
                                             cc->get<std::string>() + ", this is " +
                                             cc_str(want.device)};
    auto sm = d->find("sm_count");
    if (sm != d->end() && sm->is_number_integer() && sm->get<int64_t>() != want.device.sm_count)
      return {LoadStatus::hard_mismatch, "tuned with " + sm->dump() + " SMs, this GPU has " +
                                             std::to_string(want.device.sm_count)};
  }
  if (mh != j.end() && mh->is_string() && mh->get<std::string>() != want.manifest_hash)
    return {LoadStatus::hard_mismatch, "tuned for manifest " + mh->get<std::string>().substr(0, 12) +
                                           ", this build is " + want.manifest_hash.substr(0, 12)};

  // Soft: anything missing, unknown, or another version of the software stack.
  for (const auto& [k, _] : j.items())
    if (!known_top.count(k)) return {LoadStatus::soft_mismatch, "unknown metadata \"" + k + "\""};
  if (mh == j.end() || !mh->is_string()) return {LoadStatus::soft_mismatch, "no manifest_hash"};
  if (ent == j.end()) return {LoadStatus::soft_mismatch, "no entries"};
  auto lv = j.find("library_version");
  if (lv == j.end() || !lv->is_string())
    return {LoadStatus::soft_mismatch, "no library_version"};
  if (lv->get<std::string>() != want.library_version)
    return {LoadStatus::soft_mismatch, "library version " + lv->get<std::string>() +
                                           ", this is " + want.library_version};
  if (!d) return {LoadStatus::soft_mismatch, "no device metadata"};
  for (const auto& [k, _] : d->items())
    if (!known_dev.count(k))
      return {LoadStatus::soft_mismatch, "unknown device metadata \"" + k + "\""};
  auto need_str = [&](const char* k) { auto it = d->find(k); return it != d->end() && it->is_string(); };
  auto need_int = [&](const char* k) {
    auto it = d->find(k);
    return it != d->end() && it->is_number_integer();
  };
  if (!need_str("name") || !need_str("compute_capability") || !need_int("sm_count") ||
      !need_int("cuda_runtime") || !need_int("cuda_driver"))
    return {LoadStatus::soft_mismatch, "incomplete device metadata"};
  if ((*d)["cuda_runtime"].get<int64_t>() != want.device.cuda_runtime ||
      (*d)["cuda_driver"].get<int64_t>() != want.device.cuda_driver)
    return {LoadStatus::soft_mismatch,
            "tuned with CUDA runtime/driver " + (*d)["cuda_runtime"].dump() + "/" +
                (*d)["cuda_driver"].dump() + ", this is " +
                std::to_string(want.device.cuda_runtime) + "/" +
                std::to_string(want.device.cuda_driver)};
  return {LoadStatus::ok, "metadata matches"};
}

// Entries of an ok file; malformed ones and unknown variants are dropped and described.
void read_entries(const json& jentries, const VariantExists& exists, LoadResult& out) {
  std::string first_problem;
  for (const auto& [ks, jv] : jentries.items()) {
    auto key = Key::parse(ks);
    std::string problem;
    Entry e;
    if (!key) {
      problem = "malformed key \"" + ks + "\"";
    } else if (!jv.is_object() || !jv.contains("winner") || !jv["winner"].is_string()) {
      problem = "entry " + ks + " has no winner";
    } else {
      e.winner = jv["winner"].get<std::string>();
      if (!exists || !exists(e.winner)) problem = "variant " + e.winner + " is not in this build";
      auto t = jv.find("times_ms");
      if (problem.empty() && t != jv.end()) {
        if (!t->is_object()) problem = "entry " + ks + ": times_ms is not an object";
        else
          for (const auto& [vn, ms] : t->items()) {
            if (!ms.is_number()) { problem = "entry " + ks + ": time of " + vn + " is not a number"; break; }
            e.times_ms[vn] = ms.get<double>();
          }
      }
      auto r = jv.find("rejected");
      if (problem.empty() && r != jv.end()) {
        if (!r->is_object()) problem = "entry " + ks + ": rejected is not an object";
        else
          for (const auto& [vn, why] : r->items())
            e.rejected[vn] = why.is_string() ? why.get<std::string>() : why.dump();
      }
    }
    if (!problem.empty()) {
      ++out.dropped;
      if (first_problem.empty()) first_problem = problem;
      continue;
    }
    out.entries.emplace(*key, std::move(e));
  }
  if (out.dropped)
    out.detail = std::to_string(out.dropped) + " entr" + (out.dropped == 1 ? "y" : "ies") +
                 " dropped (first: " + first_problem + ")";
}

// Whole file into memory; nullopt + why on failure. ENOENT → no_file.
std::optional<std::string> read_file(const std::string& path, LoadStatus& st, std::string& why) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    st = errno == ENOENT ? LoadStatus::no_file : LoadStatus::corrupt;
    why = std::string("cannot open: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxFileBytes) {
      std::fclose(f);
      st = LoadStatus::corrupt;
      why = "larger than 64 MiB";
      return std::nullopt;
    }
  }
  const bool err = std::ferror(f);
  std::fclose(f);
  if (err) {
    st = LoadStatus::corrupt;
    why = "read error";
    return std::nullopt;
  }
  return text;
}

std::atomic<bool> g_warned{false};
std::atomic<int> g_suppressed{0};
std::mutex g_sink_mu;
std::function<void(const std::string&)> g_sink;

}  // namespace

// ---------------------------------------------------------------------------------------------
std::string library_version() {
  return std::to_string(ATTNFORGE_VERSION_MAJOR) + "." + std::to_string(ATTNFORGE_VERSION_MINOR) +
         "." + std::to_string(ATTNFORGE_VERSION_PATCH);
}

std::optional<Metadata> current_metadata(int device) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls are not confused
    return std::nullopt;
  }
  Metadata m;
  m.library_version = library_version();
  m.manifest_hash = manifest_hash();
  m.device.name = prop.name;
  m.device.cc_major = prop.major;
  m.device.cc_minor = prop.minor;
  m.device.sm_count = prop.multiProcessorCount;
  cudaRuntimeGetVersion(&m.device.cuda_runtime);
  cudaDriverGetVersion(&m.device.cuda_driver);
  return m;
}

int bucket(int64_t n) {
  int64_t b = 1;
  while (b < n && b < (int64_t(1) << 30)) b <<= 1;
  return int(b);
}

Key Key::of(Direction d, DType t, int64_t batch, int64_t seqlen_q, int64_t seqlen_k, int heads_q,
            int heads_kv, int head_dim, std::string mask) {
  return Key{d, t, heads_q, heads_kv, head_dim, std::move(mask),
             bucket(seqlen_q), bucket(seqlen_k), bucket(batch)};
}

std::string Key::str() const {
  std::string s;
  s.reserve(64);
  s += dir_str(direction);
  s += "|";
  s += dtype_str(dtype);
  s += "|hq" + std::to_string(heads_q) + "|hkv" + std::to_string(heads_kv) + "|d" +
       std::to_string(head_dim) + "|" + mask + "|sq" + std::to_string(sq_bucket) + "|sk" +
       std::to_string(sk_bucket) + "|b" + std::to_string(b_bucket);
  return s;
}

std::optional<Key> Key::parse(std::string_view s) {
  std::string_view f[9];
  int n = 0;
  while (n < 9) {
    size_t bar = s.find('|');
    f[n++] = s.substr(0, bar);
    if (bar == std::string_view::npos) break;
    s.remove_prefix(bar + 1);
    if (n == 9) return std::nullopt;  // too many fields
  }
  if (n != 9) return std::nullopt;
  auto d = parse_dir(f[0]);
  auto t = parse_dtype(f[1]);
  auto hq = parse_field(f[2], "hq"), hkv = parse_field(f[3], "hkv"), hd = parse_field(f[4], "d");
  auto sq = parse_field(f[6], "sq"), sk = parse_field(f[7], "sk"), b = parse_field(f[8], "b");
  if (!d || !t || !hq || !hkv || !hd || !sq || !sk || !b || !valid_mask_name(f[5])) return std::nullopt;
  if (!is_pow2(*sq) || !is_pow2(*sk) || !is_pow2(*b) || *hq % *hkv != 0) return std::nullopt;
  return Key{*d, *t, *hq, *hkv, *hd, std::string(f[5]), *sq, *sk, *b};
}

bool Key::same_class(const Key& o) const {
  return direction == o.direction && dtype == o.dtype && heads_q == o.heads_q &&
         heads_kv == o.heads_kv && head_dim == o.head_dim && mask == o.mask;
}

int Key::bucket_distance(const Key& o) const {
  return std::abs(log2i(sq_bucket) - log2i(o.sq_bucket)) +
         std::abs(log2i(sk_bucket) - log2i(o.sk_bucket)) +
         std::abs(log2i(b_bucket) - log2i(o.b_bucket));
}

const char* to_string(LoadStatus s) {
  switch (s) {
    case LoadStatus::ok: return "ok";
    case LoadStatus::no_file: return "no file";
    case LoadStatus::hard_mismatch: return "hard mismatch";
    case LoadStatus::soft_mismatch: return "soft mismatch";
    case LoadStatus::corrupt: return "corrupt";
  }
  return "?";
}

LoadResult parse(std::string_view text, const Metadata& expected, const VariantExists& exists) {
  LoadResult r;
  try {
    if (text.empty()) {
      r.status = LoadStatus::corrupt;
      r.detail = "empty file";
      return r;
    }
    // nlohmann's lexer rejects invalid UTF-8 inside strings and stray bytes outside them;
    // allow_exceptions = false turns every parse error (truncation included) into `discarded`.
    json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false,
                         /*ignore_comments=*/false);
    if (j.is_discarded()) {
      r.status = LoadStatus::corrupt;
      r.detail = "not valid JSON (truncated, corrupt or not UTF-8)";
      return r;
    }
    Verdict v = classify(j, expected);
    r.status = v.status;
    r.detail = v.detail;
    if (v.status == LoadStatus::ok) {
      read_entries(j["entries"], exists, r);
      if (!r.dropped) r.detail = "metadata matches, " + std::to_string(r.entries.size()) + " entries";
    }
  } catch (const std::exception& e) {
    r = LoadResult{};
    r.status = LoadStatus::corrupt;
    r.detail = std::string("unreadable: ") + e.what();
  } catch (...) {
    r = LoadResult{};
    r.status = LoadStatus::corrupt;
    r.detail = "unreadable";
  }
  return r;
}

std::optional<Metadata> read_metadata(std::string_view text) {
  try {
    json j = json::parse(text.begin(), text.end(), nullptr, false, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    Metadata m;
    auto str = [](const json& o, const char* k) {
      auto it = o.find(k);
      return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    auto num = [](const json& o, const char* k) {
      auto it = o.find(k);
      return it != o.end() && it->is_number_integer() ? int(it->get<int64_t>()) : 0;
    };
    m.schema_version = num(j, "schema_version");
    m.library_version = str(j, "library_version");
    m.manifest_hash = str(j, "manifest_hash");
    if (auto d = j.find("device"); d != j.end() && d->is_object()) {
      m.device.name = str(*d, "name");
      const std::string cc = str(*d, "compute_capability");
      if (auto dot = cc.find('.'); dot != std::string::npos) {
        m.device.cc_major = std::atoi(cc.substr(0, dot).c_str());
        m.device.cc_minor = std::atoi(cc.substr(dot + 1).c_str());
      }
      m.device.sm_count = num(*d, "sm_count");
      m.device.cuda_runtime = num(*d, "cuda_runtime");
      m.device.cuda_driver = num(*d, "cuda_driver");
    }
    return m;
  } catch (...) {
    return std::nullopt;
  }
}

LoadResult load(const std::string& path, const Metadata& expected, const VariantExists& exists) {
  LoadResult r;
  try {
    LoadStatus st = LoadStatus::ok;
    std::string why;
    auto text = read_file(path, st, why);
    if (!text) {
      r.status = st;
      r.detail = why;
    } else {
      r = parse(*text, expected, exists);
    }
    if (r.status == LoadStatus::corrupt)
      warn_once("tune cache " + path + " ignored: " + r.detail);
    else if (r.status == LoadStatus::ok && r.dropped)
      warn_once("tune cache " + path + ": " + r.detail);
  } catch (...) {
    r = LoadResult{};
    r.status = LoadStatus::corrupt;
    r.detail = "unreadable";
  }
  return r;
}

namespace {

// RAII flock on a lock file next to the cache (never deleted: deleting lock files races).
struct FileLock {
  int fd = -1;
  explicit FileLock(const std::string& path) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        ::close(fd);
        fd = -1;
        return;
      }
    }
  }
  ~FileLock() {
    if (fd >= 0) {
      ::flock(fd, LOCK_UN);
      ::close(fd);
    }
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
};

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool mkdirs(const std::string& dir) {
  if (dir.empty() || dir == "." || dir == "/") return true;
  struct stat st{};
  if (::stat(dir.c_str(), &st) == 0) return S_ISDIR(st.st_mode);
  if (!mkdirs(parent_dir(dir))) return false;
  return ::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST;
}

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += size_t(n);
  }
  return true;
}

std::atomic<unsigned> g_tmp_counter{0};

}  // namespace

SaveResult save_merged(const std::string& path, const Metadata& meta, const Entries& fresh,
                       const VariantExists& exists, bool overwrite_foreign) {
  SaveResult res;
  try {
    if (path.empty()) {
      res.message = "no cache path (set ATTNFORGE_TUNE_CACHE, XDG_CACHE_HOME or HOME)";
      return res;
    }
    const std::string dir = parent_dir(path);
    if (!mkdirs(dir)) {
      res.message = "cannot create directory " + dir + ": " + std::strerror(errno);
      return res;
    }
    FileLock lock(path + ".lock");
    if (lock.fd < 0) {
      res.message = "cannot lock " + path + ".lock: " + std::strerror(errno);
      return res;
    }
    // Read what is there now (under the lock: no other saver is between our read and rename).
    LoadStatus st = LoadStatus::ok;
    std::string why;
    Entries merged;
    std::string what;
    if (auto text = read_file(path, st, why)) {
      LoadResult old = parse(*text, meta, exists);
      switch (old.status) {
        case LoadStatus::ok:
          merged = std::move(old.entries);
          what = "merged into " + std::to_string(merged.size()) + " existing entries";
          break;
        case LoadStatus::hard_mismatch:
          if (!overwrite_foreign) {
            res.message = "refusing to overwrite " + path + ": " + old.detail +
                          " (use another ATTNFORGE_TUNE_CACHE, or overwrite explicitly)";
            return res;
          }
          what = "replaced a foreign cache (" + old.detail + ")";
          break;
        case LoadStatus::soft_mismatch:
          what = "replaced a stale cache (" + old.detail + ")";
          break;
        case LoadStatus::corrupt:
        case LoadStatus::no_file:
          what = "replaced an unreadable cache (" + old.detail + ")";
          break;
      }
    } else if (st == LoadStatus::no_file) {
      what = "created";
    } else {
      what = "replaced an unreadable cache (" + why + ")";
    }
    for (const auto& [k, e] : fresh) merged[k] = e;

    const std::string text =
        to_json(meta, merged).dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                            std::to_string(g_tmp_counter.fetch_add(1));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      res.message = "cannot create " + tmp + ": " + std::strerror(errno);
      return res;
    }
    bool ok = write_all(fd, text) && ::fsync(fd) == 0;
    ok = (::close(fd) == 0) && ok;
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
      res.message = "cannot write " + path + ": " + std::strerror(errno);
      ::unlink(tmp.c_str());
      return res;
    }
    // The rename itself must reach the disk: fsync the directory that holds the entry.
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
    res.ok = true;
    res.total_entries = merged.size();
    res.message = what + "; wrote " + std::to_string(fresh.size()) + " new, " +
                  std::to_string(merged.size()) + " total to " + path;
  } catch (const std::exception& e) {
    res = SaveResult{};
    res.message = std::string("save failed: ") + e.what();
  } catch (...) {
    res = SaveResult{};
    res.message = "save failed";
  }
  return res;
}

std::string default_path() {
  auto env = [](const char* n) -> std::string {
    const char* v = std::getenv(n);
    return v ? std::string(v) : std::string();
  };
  if (auto p = env("ATTNFORGE_TUNE_CACHE"); !p.empty()) return p;
  if (auto x = env("XDG_CACHE_HOME"); !x.empty()) return x + "/attnforge/tune.json";
  if (auto h = env("HOME"); !h.empty()) return h + "/.cache/attnforge/tune.json";
  return {};
}

void warn_once(const std::string& message) {
  if (g_warned.exchange(true)) {
    g_suppressed.fetch_add(1);
    return;
  }
  std::lock_guard<std::mutex> lk(g_sink_mu);
  if (g_sink) g_sink(message);
  else std::fprintf(stderr, "attnforge: warning: %s\n", message.c_str());
}
int warnings_suppressed() { return g_suppressed.load(); }
void set_warning_sink(std::function<void(const std::string&)> sink) {
  std::lock_guard<std::mutex> lk(g_sink_mu);
  g_sink = std::move(sink);
}
void reset_warning_for_testing() {
  g_warned = false;
  g_suppressed = 0;
}

const std::pair<const Key, Entry>* nearest(const Entries& entries, const Key& key) {
  if (auto it = entries.find(key); it != entries.end()) return &*it;
  const std::pair<const Key, Entry>* best = nullptr;
  int best_d = 0, best_size = 0;
  for (const auto& kv : entries) {
    if (!kv.first.same_class(key)) continue;
    const int d = kv.first.bucket_distance(key);
    const int size = log2i(kv.first.sq_bucket) + log2i(kv.first.sk_bucket) + log2i(kv.first.b_bucket);
    if (!best || d < best_d || (d == best_d && size > best_size)) {
      best = &kv;
      best_d = d;
      best_size = size;
    }
  }
  return best;
}

}  // namespace attnforge::tune
