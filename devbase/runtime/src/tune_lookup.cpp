// The process-wide tune cache selection reads: one loaded file per device, guarded by a mutex,
// replaced only by tune_lookup_reload / tune_lookup_use_entries / tune_lookup_disable.
#include "tune_lookup.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <utility>

namespace attnforge {

namespace {

struct Loaded {
  tune::LoadStatus status = tune::LoadStatus::no_file;
  std::string path;
  std::string detail;
  tune::Entries entries;
};

struct State {
  std::mutex mu;
  std::map<int, std::shared_ptr<const Loaded>> by_device;
  std::shared_ptr<const Loaded> override_all;  // tests: entries; disable: empty with a detail
};

std::atomic<uint64_t> g_generation{1};

State& state() {
  static State* s = new State;  // never destroyed: selection may run during static destruction
  return *s;
}

std::shared_ptr<const Loaded> load_for(int device) {
  auto l = std::make_shared<Loaded>();
  auto meta = tune::current_metadata(device);
  if (!meta) {
    l->status = tune::LoadStatus::no_file;
    l->detail = "no CUDA device to match a tune cache against";
    return l;
  }
  l->path = tune::default_path();
  if (l->path.empty()) {
    l->detail = "no cache location (ATTNFORGE_TUNE_CACHE, XDG_CACHE_HOME and HOME unset)";
    return l;
  }
  tune::LoadResult r =
      tune::load(l->path, *meta, [](std::string_view n) { return find_variant(n) != nullptr; });
  l->status = r.status;
  l->detail = r.detail;
  l->entries = std::move(r.entries);
  return l;
}

std::shared_ptr<const Loaded> get(int device) {
  State& s = state();
  std::lock_guard<std::mutex> lk(s.mu);
  if (s.override_all) return s.override_all;
  auto it = s.by_device.find(device);
  if (it != s.by_device.end()) return it->second;
  auto l = load_for(device);
  s.by_device.emplace(device, l);
  return l;
}

}  // namespace

tune::Key tune_key_of(const Problem& pr) {
  const char* m = mask_name(pr.mask_id);
  return tune::Key::of(pr.direction, pr.dtype, pr.batch, pr.seqlen_q, pr.seqlen_k, pr.heads_q,
                       pr.heads_kv, pr.head_dim, m ? m : "unknown");
}

TuneHit tune_lookup(const Problem& pr, int device) {
  TuneHit hit;
  try {
    auto l = get(device);
    const tune::Key key = tune_key_of(pr);
    if (l->status != tune::LoadStatus::ok) {
      hit.origin = std::string("tune cache not used (") + (l->path.empty() ? "" : l->path + ": ") +
                   tune::to_string(l->status) + (l->detail.empty() ? "" : ", " + l->detail) + ")";
      return hit;
    }
    const auto* e = tune::nearest(l->entries, key);
    if (e == nullptr) {
      hit.origin = "tune cache " + l->path + " has no entry for " + key.str();
      return hit;
    }
    hit.found = true;
    hit.exact = e->first == key;
    hit.origin = hit.exact ? "tune cache, exact key " + key.str()
                           : "tune cache, nearest bucket " + e->first.str() + " for " + key.str();
    // Winner first, then every other timed, non-rejected variant by its time.
    std::vector<std::pair<double, std::string>> rest;
    for (const auto& [name, ms] : e->second.times_ms)
      if (name != e->second.winner && !e->second.rejected.count(name)) rest.emplace_back(ms, name);
    std::sort(rest.begin(), rest.end());
    auto w = e->second.times_ms.find(e->second.winner);
    hit.ranked.push_back(e->second.winner);
    hit.ms.push_back(w != e->second.times_ms.end() ? w->second : 0.0);
    for (auto& [ms, name] : rest) {
      hit.ranked.push_back(std::move(name));
      hit.ms.push_back(ms);
    }
  } catch (...) {
    hit = TuneHit{};
    hit.origin = "tune cache lookup failed";
  }
  return hit;
}

uint64_t tune_lookup_generation() { return g_generation.load(std::memory_order_acquire); }

void tune_lookup_reload() {
  State& s = state();
  std::lock_guard<std::mutex> lk(s.mu);
  s.by_device.clear();
  s.override_all.reset();
  g_generation.fetch_add(1, std::memory_order_acq_rel);
}

void tune_lookup_use_entries(tune::Entries entries, std::string origin) {
  auto l = std::make_shared<Loaded>();
  l->status = tune::LoadStatus::ok;
  l->path = std::move(origin);
  l->entries = std::move(entries);
  State& s = state();
  std::lock_guard<std::mutex> lk(s.mu);
  s.override_all = std::move(l);
  g_generation.fetch_add(1, std::memory_order_acq_rel);
}

void tune_lookup_disable(std::string why) {
  auto l = std::make_shared<Loaded>();
  l->status = tune::LoadStatus::no_file;
  l->detail = "disabled (" + why + ")";
  State& s = state();
  std::lock_guard<std::mutex> lk(s.mu);
  s.override_all = std::move(l);
  g_generation.fetch_add(1, std::memory_order_acq_rel);
}

}  // namespace attnforge
