// The process-wide view of the tune cache that selection reads: loaded lazily once per device
// (from tune::default_path(), checked against this GPU and build), looked up by exact key then
// nearest bucket. Tests and the tuner can swap in entries or force a reload.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "select.hpp"
#include "tune_cache.hpp"

namespace attnforge {

// A tune-cache verdict for one problem: the ranked variants to try, best first, and where they
// came from ("exact key ..." / "nearest bucket ... for ..."), or why there is nothing.
struct TuneHit {
  bool found = false;
  bool exact = false;
  std::string origin;                // printable: which entry, which file
  std::vector<std::string> ranked;   // winner first, then the other timed variants by time
  std::vector<double> ms;            // their times, same order
};

// Looks `pr` up in the cache of `device` (loading it on first use). Never throws.
TuneHit tune_lookup(const Problem& pr, int device);

// The key a problem is filed under (sizes bucketed; varlen uses the max sequence lengths).
tune::Key tune_key_of(const Problem& pr);

// Bumped by every control call below: selection memos compare it to drop stale decisions.
uint64_t tune_lookup_generation();

// ---- control (exported: the tuner and the host tests use these) ------------------------------
// Forget every loaded cache: the next lookup reads the file again (the tuner calls this after
// saving so that "auto" sees its results).
ATTNFORGE_API void tune_lookup_reload();
// Use these entries (as if loaded with status ok from `origin`) for every device instead of the
// file, until tune_lookup_reload(). Host tests use it: there is no GPU to match metadata against.
ATTNFORGE_API void tune_lookup_use_entries(tune::Entries entries, std::string origin);
// Disable the tune cache entirely (heuristics only) until tune_lookup_reload(); the tuner uses it
// to measure the heuristic's choice.
ATTNFORGE_API void tune_lookup_disable(std::string why);

}  // namespace attnforge
