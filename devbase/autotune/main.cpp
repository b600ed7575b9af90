// attnforge-tune: times every compiled variant that can run each shape (after it passes the
// numerics rule on a reduced copy), records per shape the winner and every candidate's time in the
// tune cache, and prints a summary. --verify then times backend "auto" with that cache and with
// heuristics only against the best variant.
#include <cuda_runtime_api.h>
#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "attnforge/attnforge.h"
#include "check.hpp"
#include "device.hpp"
#include "grid.hpp"
#include "problem.hpp"
#include "progress.hpp"
#include "select.hpp"
#include "tune_cache.hpp"
#include "tune_lookup.hpp"
#include "verify.hpp"

namespace attnforge::tuner {
namespace {

constexpr const char* kUsage = R"(usage: attnforge-tune [options] (--shape SPEC | --grid FILE.toml)...

Times every compiled variant of every backend that can run each shape and writes the winners to
the tune cache that backend "auto" reads.

  --shape SPEC      b=8,sq=4096,sk=4096,hq=16,hkv=16,d=128,dtype=bf16,mask=causal[,dir=fwd|bwd|both]
                    (also: s= for sq=sk, h= for hq=hkv, left=/right= for mask=window,
                    tokens= / hidden= for b = tokens/sq, h = hidden/d); repeatable
  --grid FILE       a grid file (autotune/grids/{training,decode,classic,wide_heads}.toml); repeatable
  --dir D           fwd, bwd or both: override every shape's direction
  --dry-run         list each shape's candidates (no GPU needed), time nothing
  --reps N          timed runs per candidate, median reported (default 10)
  --warmup N        untimed runs first (default 3)
  --max-ms MS       stop timing a candidate after this much total time, once 3 runs exist (default 3000)
  --filter GLOB     only variants whose name matches
  --exclude GLOB    never variants whose name matches (repeatable)
  --resume          skip shapes the cache already holds for this GPU and build (their entries
                    still count in the summary and --verify); every shape is saved as it finishes
  --cache PATH      tune cache to write (default: $ATTNFORGE_TUNE_CACHE, else $XDG_CACHE_HOME or
                    ~/.cache /attnforge/tune.json)
  --no-save         do not write the cache
  --overwrite-foreign  replace a cache tuned on another GPU or build (normally refused)
  --no-check        skip the numerics gate (not recommended: a wrong variant could win)
  --verify          after saving, time backend "auto" with the cache and with heuristics only, and
                    the winner again beside them; exit 1 unless auto picks the winner or is within
                    5% of that winner time, and heuristics likewise within 25%
  --report FILE     also write the summary as a markdown table
  --analyze FILE    offline (no GPU): for each shape, what heuristics alone would pick, priced with
                    the times a cache FILE (tuned anywhere) measured, against its winner
  --device N        CUDA device (default 0)
  --seed N          seed of the numerics check's inputs (default 1)
)";

struct Options {
  std::vector<TuneShape> shapes;
  std::string dir_override;
  bool dry_run = false, save = true, overwrite = false, check = true, verify = false, resume = false;
  std::vector<std::string> exclude;
  int reps = 10, warmup = 3, device = 0;
  double max_ms = 3000;
  uint64_t seed = 1;
  std::string filter, cache, report, analyze;
};

struct Result {
  TuneShape shape;
  std::vector<Candidate> candidates;
  std::map<std::string, double> times;
  std::map<std::string, std::string> rejected;
  std::string winner, runner_up;
  double best_ms = 0, runner_ms = 0, flops = 0;
  std::string auto_variant, heur_variant;
  double auto_ms = -1, heur_ms = -1;
  double winner_again_ms = -1;  // the winner timed again in the verify pass, beside auto

  // What auto and heuristics are held to: the winner timed in the same pass as they are. The tuning
  // pass's best_ms is the minimum over many noisy medians, biased low (on the H200 the same variant
  // called through auto timed 6–12 % above it on small shapes).
  double verify_ref_ms() const { return winner_again_ms > 0 ? winner_again_ms : best_ms; }
  bool auto_holds() const { return pick_holds(auto_variant, auto_ms, winner, verify_ref_ms(), 0.05); }
  bool heur_holds() const { return pick_holds(heur_variant, heur_ms, winner, verify_ref_ms(), 0.25); }
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "attnforge-tune: %s\n\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) usage_error(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  auto number = [&](int& i) -> long long {
    const std::string v = value(i);
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    if (end == v.c_str() || *end) usage_error(std::string(argv[i - 1]) + " expects a number, got '" + v + "'");
    return n;
  };
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--shape") for (auto& s : parse_shape(value(i))) o.shapes.push_back(s);
      else if (a == "--grid") for (auto& s : parse_grid_file(value(i))) o.shapes.push_back(s);
      else if (a == "--dir") o.dir_override = value(i);
      else if (a == "--dry-run") o.dry_run = true;
      else if (a == "--reps") o.reps = int(std::max(1LL, number(i)));
      else if (a == "--warmup") o.warmup = int(std::max(0LL, number(i)));
      else if (a == "--max-ms") o.max_ms = double(number(i));
      else if (a == "--filter") o.filter = value(i);
      else if (a == "--exclude") o.exclude.push_back(value(i));
      else if (a == "--resume") o.resume = true;
      else if (a == "--cache") o.cache = value(i);
      else if (a == "--no-save") o.save = false;
      else if (a == "--overwrite-foreign") o.overwrite = true;
      else if (a == "--no-check") o.check = false;
      else if (a == "--verify") o.verify = true;
      else if (a == "--report") o.report = value(i);
      else if (a == "--analyze") o.analyze = value(i);
      else if (a == "--device") o.device = int(number(i));
      else if (a == "--seed") o.seed = uint64_t(number(i));
      else if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        std::exit(0);
      } else usage_error("unknown option '" + a + "'");
    }
  } catch (const GridError& e) {
    usage_error(e.what());
  }
  if (o.shapes.empty()) usage_error("no shapes: give --shape or --grid");
  if (!o.dir_override.empty()) {
    if (o.dir_override != "fwd" && o.dir_override != "bwd" && o.dir_override != "both")
      usage_error("--dir must be fwd, bwd or both");
    std::vector<TuneShape> out;
    std::set<std::string> seen;
    for (TuneShape s : o.shapes)
      for (bool bwd : {false, true}) {
        if ((bwd && o.dir_override == "fwd") || (!bwd && o.dir_override == "bwd")) continue;
        s.backward = bwd;
        if (seen.insert(s.label()).second) out.push_back(s);
      }
    o.shapes = out;
  }
  // The same shape twice (two grids) is tuned once.
  std::vector<TuneShape> unique;
  std::set<std::string> seen;
  for (const auto& s : o.shapes)
    if (seen.insert(s.label()).second) unique.push_back(s);
  o.shapes = unique;
  if (o.cache.empty()) o.cache = tune::default_path();
  return o;
}

double tflops(double flops, double ms) { return ms > 0 ? flops / (ms * 1e-3) / 1e12 : 0; }

double flops_of(const TuneShape& s) {
  attnforge_args a = make_fake_args(s);
  attnforge_backend_estimate e[3];
  int n = 0;
  if (attnforge_estimate(&a, s.backward ? 1 : 0, e, 3, &n) != ATTNFORGE_OK || n == 0) return 0;
  return e[0].flops;
}

tune::Key key_of(const TuneShape& s) {
  return tune::Key::of(s.backward ? Direction::bwd : Direction::fwd, DType(int(s.dtype)), s.batch, s.seqlen_q,
                       s.seqlen_k, s.heads_q, s.heads_kv, s.head_dim, s.mask);
}

// The shape's candidates less --exclude.
std::vector<Candidate> candidates_for(const TuneShape& s, const Options& o) {
  std::vector<Candidate> out;
  for (auto& c : enumerate_candidates(s, o.filter)) {
    bool skip = false;
    for (const auto& g : o.exclude) skip = skip || fnmatch(g.c_str(), c.name.c_str(), 0) == 0;
    if (!skip) out.push_back(std::move(c));
  }
  return out;
}

// False when the CUDA context is gone (a kernel faulted: every later call would fail too).
bool context_alive() {
  cudaError_t e = cudaDeviceSynchronize();
  void* probe = nullptr;
  if (e == cudaSuccess) e = cudaMalloc(&probe, 256);
  if (e == cudaSuccess) e = cudaFree(probe);
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "\nattnforge-tune: CUDA context lost: %s\n", cudaGetErrorString(e));
  return false;
}

constexpr int kExitCrashed = 3;
int crashed(const std::string& variant, const TuneShape& s) {
  std::fprintf(stderr,
               "attnforge-tune: CRASHED in %s on %s; shapes finished so far are saved. Rerun with "
               "--exclude %s --resume\n",
               variant.c_str(), s.label().c_str(), variant.c_str());
  std::printf("CRASHED: %s\n", variant.c_str());
  return kExitCrashed;
}

// ---- dry run -----------------------------------------------------------------------------------
int dry_run(const Options& o) {
  int total = 0;
  for (const auto& s : o.shapes) {
    const auto cands = candidates_for(s, o);
    std::printf("%s  (%.3g GFLOP)\n", s.label().c_str(), flops_of(s) / 1e9);
    if (cands.empty()) std::printf("    (no compiled variant for this dtype / head dim / mask)\n");
    for (const auto& c : cands) {
      if (c.runnable) {
        ++total;
        std::printf("    %-48s workspace %10.1f MiB\n", c.name.c_str(), double(c.workspace) / (1 << 20));
      } else {
        std::printf("    %-48s cannot run: %s\n", c.name.c_str(), c.why_not.c_str());
      }
    }
  }
  std::printf("%zu shapes, %d candidates to time (dry run: nothing timed, no GPU used)\n", o.shapes.size(), total);
  return 0;
}

std::string ms_str(double ms);

// ---- offline analysis of a cache measured elsewhere --------------------------------------------
int analyze(const Options& o) {
  std::ifstream in(o.analyze, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "attnforge-tune: cannot open %s\n", o.analyze.c_str());
    return 1;
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto meta = tune::read_metadata(text);
  if (!meta) {
    std::fprintf(stderr, "attnforge-tune: %s is not a tune cache\n", o.analyze.c_str());
    return 1;
  }
  const auto exists = [](std::string_view n) {
    for (int i = 0; i < attnforge_variant_count(); ++i)
      if (n == attnforge_variant_name(i)) return true;
    return false;
  };
  const tune::LoadResult lr = tune::parse(text, *meta, exists);
  if (lr.status != tune::LoadStatus::ok) {
    std::fprintf(stderr, "attnforge-tune: %s: %s (%s)\n", o.analyze.c_str(), tune::to_string(lr.status),
                 lr.detail.c_str());
    return 1;
  }
  std::printf("%s: tuned on %s, %zu entries; heuristics of this build priced with its times\n\n",
              o.analyze.c_str(), meta->device.name.c_str(), lr.entries.size());
  std::printf("%-58s  %-44s  %9s  %-44s  %9s  %6s\n", "shape", "tuned winner", "ms", "heuristic pick", "ms",
              "ratio");
  int n = 0, within = 0, untimed = 0;
  for (const auto& s : o.shapes) {
    const tune::Key key = tune::Key::of(s.backward ? Direction::bwd : Direction::fwd, DType(int(s.dtype)), s.batch,
                                        s.seqlen_q, s.seqlen_k, s.heads_q, s.heads_kv, s.head_dim, s.mask);
    auto it = lr.entries.find(key);
    if (it == lr.entries.end()) {
      std::printf("%-58s  (no entry %s)\n", s.label().c_str(), key.str().c_str());
      continue;
    }
    const tune::Entry& e = it->second;
    const double best = e.times_ms.count(e.winner) ? e.times_ms.at(e.winner) : -1;
    select_reset();
    tune_lookup_disable("attnforge-tune --analyze: heuristics only");
    attnforge_args a = make_fake_args(s);
    char variant[128] = {0};
    attnforge_backend chosen{};
    attnforge_select_backend(&a, s.backward ? 1 : 0, &chosen, variant, sizeof variant, nullptr, 0);
    auto t = e.times_ms.find(variant);
    const double ms = t != e.times_ms.end() ? t->second : -1;
    char ratio[32] = "-";
    ++n;
    if (ms > 0 && best > 0) {
      std::snprintf(ratio, sizeof ratio, "%.3f", ms / best);
      within += ms <= 1.25 * best;
    } else {
      ++untimed;
    }
    std::printf("%-58s  %-44s  %9s  %-44s  %9s  %6s\n", s.label().c_str(), e.winner.c_str(), ms_str(best).c_str(),
                variant, ms_str(ms).c_str(), ratio);
  }
  select_reset();
  std::printf("\nheuristics only: within 25%% of the tuned winner on %d/%d shapes (%d picks not timed there)\n",
              within, n, untimed);
  return 0;
}

// ---- the full-size tensors of one shape ---------------------------------------------------------
struct FullTensors {
  DeviceBuffer q, k, v, o, lse, d_o, dq, dk, dv, bias;
  CallTensors t;
};

// Allocates and fills the inputs; backward also gets O and LSE from a forward (backend auto).
void prepare(const TuneShape& s, FullTensors& f, RandomPool& pool, cudaStream_t st) {
  const Extents e = extents(s);
  const size_t eb = dtype_bytes(s.dtype);
  f.q.reserve(e.q * eb);
  f.k.reserve(e.kv * eb);
  f.v.reserve(e.kv * eb);
  f.o.reserve(e.q * eb);
  f.lse.reserve(e.lse * 4);
  pool.fill(f.q.get(), s.dtype, e.q, 0, st);
  pool.fill(f.k.get(), s.dtype, e.kv, 1, st);
  pool.fill(f.v.get(), s.dtype, e.kv, 2, st);
  if (e.bias) {
    f.bias.reserve(e.bias * eb);
    pool.fill(f.bias.get(), s.dtype, e.bias, 3, st);
  }
  f.t = CallTensors{};
  f.t.q = f.q.get(), f.t.k = f.k.get(), f.t.v = f.v.get(), f.t.o = f.o.get();
  f.t.lse = static_cast<float*>(f.lse.get());
  f.t.bias = f.bias.get();
  if (s.backward) {
    f.d_o.reserve(e.q * eb);
    f.dq.reserve(e.q * eb);
    f.dk.reserve(e.kv * eb);
    f.dv.reserve(e.kv * eb);
    pool.fill(f.d_o.get(), s.dtype, e.q, 3, st);
    f.t.d_o = f.d_o.get(), f.t.dq = f.dq.get(), f.t.dk = f.dk.get(), f.t.dv = f.dv.get();
    TuneShape fwd = s;
    fwd.backward = false;
    attnforge_args a = make_args(fwd, f.t);
    if (attnforge_forward(&a, st) != ATTNFORGE_OK)
      throw std::runtime_error(std::string("the forward that makes O and LSE for the backward failed: ") +
                               attnforge_last_error());
  }
  cuda_check(cudaStreamSynchronize(st), "preparing inputs");
}

size_t free_device_bytes() {
  size_t free_b = 0, total_b = 0;
  cuda_check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  return free_b;
}

// Times `variant` (or backend auto when empty) on the prepared tensors with a caller workspace.
Timing time_variant(const TuneShape& s, FullTensors& f, const std::string& variant, const Options& o,
                    DeviceBuffer& ws, L2Flusher& l2, cudaStream_t st) {
  attnforge_args a = make_args(s, f.t);
  if (!variant.empty()) a.variant = variant.c_str();
  size_t need = 0;
  if (attnforge_workspace_size(&a, s.backward ? 1 : 0, &need) != ATTNFORGE_OK) {
    Timing t;
    t.error = attnforge_last_error();
    return t;
  }
  ws.reserve(need);
  a.workspace = ws.get();
  a.workspace_bytes = ws.bytes();
  const bool bwd = s.backward;
  return time_calls([&] { return bwd ? attnforge_backward(&a, st) : attnforge_forward(&a, st); }, o.warmup, o.reps,
                    o.max_ms, l2, st);
}

std::string ms_str(double ms) {
  char b[32];
  std::snprintf(b, sizeof b, ms < 0 ? "-" : "%.3f", ms);
  return ms < 0 ? "-" : b;
}

void print_summary(const std::vector<Result>& results, bool verify, FILE* out, bool markdown) {
  const char* sep = markdown ? " | " : "  ";
  if (markdown) {
    std::fprintf(out, "| shape | winner | ms | TFLOP/s | runner-up | ms | runner-up +%% |%s\n",
                 verify ? " winner again | auto | auto/winner | heuristic | heur/winner |" : "");
    std::fprintf(out, "|---|---|---|---|---|---|---|%s\n", verify ? "---|---|---|---|---|" : "");
  } else {
    std::fprintf(out, "%-58s  %-44s  %9s  %7s  %-44s  %9s  %6s%s\n", "shape", "winner", "ms", "TFLOP/s", "runner-up",
                 "ms", "+%", verify ? "  auto/winner  heur/winner" : "");
  }
  for (const auto& r : results) {
    const double plus = r.runner_ms > 0 && r.best_ms > 0 ? 100.0 * (r.runner_ms / r.best_ms - 1) : 0;
    char tf[32], pl[32];
    std::snprintf(tf, sizeof tf, "%.1f", tflops(r.flops, r.best_ms));
    std::snprintf(pl, sizeof pl, r.runner_up.empty() ? "-" : "%.1f", plus);
    const std::string winner = r.winner.empty() ? "(none passed)" : r.winner;
    const std::string runner = r.runner_up.empty() ? "-" : r.runner_up;
    if (markdown) {
      std::fprintf(out, "| %s | %s | %s | %s | %s | %s | %s |", r.shape.label().c_str(), winner.c_str(),
                   ms_str(r.best_ms).c_str(), tf, runner.c_str(), ms_str(r.runner_up.empty() ? -1 : r.runner_ms).c_str(), pl);
    } else {
      std::fprintf(out, "%-58s%s%-44s%s%9s%s%7s%s%-44s%s%9s%s%6s", r.shape.label().c_str(), sep, winner.c_str(), sep,
                   ms_str(r.best_ms).c_str(), sep, tf, sep, runner.c_str(), sep,
                   ms_str(r.runner_up.empty() ? -1 : r.runner_ms).c_str(), sep, pl);
    }
    if (verify) {
      char ar[32] = "-", hr[32] = "-";
      const double ref = r.verify_ref_ms();
      if (r.auto_ms > 0 && ref > 0) std::snprintf(ar, sizeof ar, "%.3f", r.auto_ms / ref);
      if (r.heur_ms > 0 && ref > 0) std::snprintf(hr, sizeof hr, "%.3f", r.heur_ms / ref);
      if (markdown)
        std::fprintf(out, " %s | %s %s | %s | %s %s | %s |", ms_str(r.winner_again_ms).c_str(), r.auto_variant.c_str(),
                     ms_str(r.auto_ms).c_str(), ar, r.heur_variant.c_str(), ms_str(r.heur_ms).c_str(), hr);
      else
        std::fprintf(out, "  %11s  %11s", ar, hr);
    }
    std::fprintf(out, "\n");
  }
}

// ---- tuning ----------------------------------------------------------------------------------------
int tune_all(const Options& o) {
  cuda_check(cudaSetDevice(o.device), "cudaSetDevice");
  auto meta = tune::current_metadata(o.device);
  if (!meta) {
    std::fprintf(stderr, "attnforge-tune: no usable CUDA device %d (use --dry-run to list candidates)\n", o.device);
    return 1;
  }
  std::fprintf(stderr, "attnforge-tune: %s (sm_%d%d, %d SMs), %zu shapes, cache %s\n", meta->device.name.c_str(),
               meta->device.cc_major, meta->device.cc_minor, meta->device.sm_count, o.shapes.size(),
               o.save ? o.cache.c_str() : "(not saved)");
  cudaStream_t st = nullptr;
  cuda_check(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "cudaStreamCreate");
  L2Flusher l2(o.device);
  RandomPool pool;
  DeviceBuffer ws;

  const auto exists = [](std::string_view n) {
    for (int i = 0; i < attnforge_variant_count(); ++i)
      if (n == attnforge_variant_name(i)) return true;
    return false;
  };
  // --resume: what this GPU and build already have in the cache.
  tune::Entries done;
  if (o.resume) {
    tune::LoadResult lr = tune::load(o.cache, *meta, exists);
    if (lr.status == tune::LoadStatus::ok) done = std::move(lr.entries);
    std::fprintf(stderr, "attnforge-tune: --resume: %zu entries already in %s (%s)\n", done.size(),
                 o.cache.c_str(), tune::to_string(lr.status));
  }

  std::vector<Result> results(o.shapes.size());
  std::vector<bool> from_cache(o.shapes.size(), false);
  int total_steps = 0;
  for (size_t i = 0; i < o.shapes.size(); ++i) {
    Result& r = results[i];
    r.shape = o.shapes[i];
    r.flops = flops_of(r.shape);
    if (auto it = done.find(key_of(r.shape)); it != done.end() && it->second.times_ms.count(it->second.winner)) {
      from_cache[i] = true;  // tuned by an earlier run: summary and --verify use its entry
      r.times = it->second.times_ms;
      r.rejected = it->second.rejected;
      continue;
    }
    r.candidates = candidates_for(r.shape, o);
    for (const auto& c : r.candidates) total_steps += c.runnable ? 1 : 0;
  }
  Progress progress(total_steps);
  std::map<std::string, CheckResult> checked;  // each variant is checked once per run
  int failures = 0;
  std::string running;  // the variant on the GPU now, named if the CUDA context dies under it

  // Saves one shape's entry at once (merged under the lock): a run cut short keeps what it measured.
  auto save_one = [&](const Result& r) {
    if (!o.save || r.winner.empty()) return;
    const auto res = tune::save_merged(o.cache, *meta, {{key_of(r.shape), tune::Entry{r.winner, r.times, r.rejected}}},
                                       exists, o.overwrite);
    if (!res.ok) {
      ++failures;
      std::fprintf(stderr, "\nattnforge-tune: cache: %s\n", res.message.c_str());
    }
  };

  for (size_t i = 0; i < results.size(); ++i) {
    Result& r = results[i];
    const TuneShape& s = r.shape;
    if (!from_cache[i]) {
      std::unique_ptr<NumericsCase> numerics;
      FullTensors f;
      bool prepared = false;
      for (const auto& c : r.candidates) {
        if (!c.runnable) {
          r.rejected[c.name] = "cannot run: " + c.why_not;
          continue;
        }
        progress.note(s.label() + ": " + c.name);
        running = c.name;
        if (o.check) {
          auto it = checked.find(c.name);
          if (it == checked.end()) {
            if (!numerics) numerics = std::make_unique<NumericsCase>(s, o.seed);
            it = checked.emplace(c.name, numerics->check(c.name)).first;
            if (!it->second.pass)
              std::fprintf(stderr, "\nattnforge-tune: %s FAILED the numerics check (%s): %s\n", c.name.c_str(),
                           numerics->shape().label().c_str(), it->second.detail.c_str());
          }
          if (!it->second.pass) {
            r.rejected[c.name] = "numerics: " + it->second.detail;
            progress.step(s.label() + ": " + c.name + " rejected (numerics)");
            if (!context_alive()) return crashed(running, s);
            continue;
          }
        }
        try {
          if (!prepared) {
            running = "the forward that prepares O and LSE (backend auto)";
            prepare(s, f, pool, st);
            prepared = true;
            running = c.name;
          }
          const size_t free_b = free_device_bytes() + ws.bytes();
          if (c.workspace + (size_t(512) << 20) > free_b) {
            r.rejected[c.name] = "needs " + std::to_string(c.workspace >> 20) + " MiB of workspace, " +
                                 std::to_string(free_b >> 20) + " MiB free";
            progress.step(s.label() + ": " + c.name + " skipped (memory)");
            continue;
          }
          const Timing t = time_variant(s, f, c.name, o, ws, l2, st);
          if (!t.ok) r.rejected[c.name] = "failed: " + t.error;
          else r.times[c.name] = t.median_ms;
        } catch (const std::exception& e) {
          r.rejected[c.name] = std::string("failed: ") + e.what();
          (void)cudaGetLastError();
        }
        if (r.rejected.count(c.name) && !context_alive()) return crashed(running, s);
        progress.step(s.label() + ": " + c.name);
      }
    }
    // Winner: the fastest timed variant; runner-up: the next.
    std::vector<std::pair<double, std::string>> order;
    for (const auto& [n, ms] : r.times) order.emplace_back(ms, n);
    std::sort(order.begin(), order.end());
    if (!order.empty()) {
      r.winner = order[0].second, r.best_ms = order[0].first;
      if (order.size() > 1) r.runner_up = order[1].second, r.runner_ms = order[1].first;
      if (!from_cache[i]) save_one(r);
    } else {
      ++failures;
      std::fprintf(stderr, "\nattnforge-tune: no variant could be timed for %s\n", s.label().c_str());
    }
  }
  progress.finish();
  const double tune_s = progress.elapsed_s();
  std::fprintf(stderr, "attnforge-tune: tuned %zu shapes in %.1f s%s\n", results.size(), tune_s,
               o.save ? (", each saved to " + o.cache).c_str() : "");

  // ---- verification: auto with the cache, auto with heuristics only ----
  int verify_failures = 0;
  if (o.verify) {
    if (!o.save) std::fprintf(stderr, "attnforge-tune: --verify without saving: auto reads %s\n", o.cache.c_str());
    ::setenv("ATTNFORGE_TUNE_CACHE", o.cache.c_str(), 1);
    Progress vp(int(results.size()));
    for (auto& r : results) {
      if (r.winner.empty()) continue;
      try {
        FullTensors f;
        prepare(r.shape, f, pool, st);
        for (int mode = 0; mode < 2; ++mode) {
          select_reset();  // re-reads the cache file
          if (mode == 1) tune_lookup_disable("attnforge-tune --verify: heuristics only");
          attnforge_args a = make_args(r.shape, f.t);
          char variant[128] = {0};
          attnforge_backend chosen{};
          attnforge_select_backend(&a, r.shape.backward ? 1 : 0, &chosen, variant, sizeof variant, nullptr, 0);
          const Timing t = time_variant(r.shape, f, "", o, ws, l2, st);
          (mode == 0 ? r.auto_variant : r.heur_variant) = variant;
          (mode == 0 ? r.auto_ms : r.heur_ms) = t.ok ? t.median_ms : -1;
        }
        select_reset();
        const Timing w = time_variant(r.shape, f, r.winner, o, ws, l2, st);
        r.winner_again_ms = w.ok ? w.median_ms : -1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "\nattnforge-tune: verify %s: %s\n", r.shape.label().c_str(), e.what());
      }
      verify_failures += !r.auto_holds() + !r.heur_holds();
      vp.step(r.shape.label());
    }
    vp.finish();
  }

  std::printf("\n");
  print_summary(results, o.verify, stdout, false);
  std::printf("\ntuned %zu shapes in %.1f s on %s%s\n", results.size(), tune_s, meta->device.name.c_str(),
              o.check ? "" : " (numerics check skipped)");
  for (const auto& [name, c] : checked)
    if (!c.pass) std::printf("numerics FAILED: %s: %s\n", name.c_str(), c.detail.c_str());
  if (o.verify) {
    int auto_ok = 0, heur_ok = 0, auto_is_winner = 0, n = 0;
    for (const auto& r : results) {
      if (r.winner.empty()) continue;
      ++n;
      auto_ok += r.auto_holds();
      heur_ok += r.heur_holds();
      auto_is_winner += r.auto_variant == r.winner;
    }
    std::printf("verify: auto picks the winner or is within 5%% of it (timed again beside it) on %d/%d shapes "
                "(the winner itself on %d); heuristics only within 25%% on %d/%d\n",
                auto_ok, n, auto_is_winner, heur_ok, n);
  }
  if (!o.report.empty()) {
    if (FILE* f = std::fopen(o.report.c_str(), "w")) {
      std::fprintf(f, "# attnforge-tune on %s (sm_%d%d, %d SMs, CUDA runtime %d)\n\n", meta->device.name.c_str(),
                   meta->device.cc_major, meta->device.cc_minor, meta->device.sm_count, meta->device.cuda_runtime);
      print_summary(results, o.verify, f, true);
      std::fprintf(f, "\nTuned %zu shapes in %.1f s; median of up to %d runs after %d warm-up, L2 flushed.\n",
                   results.size(), tune_s, o.reps, o.warmup);
      std::fclose(f);
    }
  }
  (void)cudaStreamDestroy(st);
  return (failures || verify_failures) ? 1 : 0;
}

}  // namespace
}  // namespace attnforge::tuner

int main(int argc, char** argv) {
  using namespace attnforge::tuner;
  const Options o = parse_options(argc, argv);
  try {
    if (!o.analyze.empty()) return analyze(o);
    return o.dry_run ? dry_run(o) : tune_all(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnforge-tune: %s\n", e.what());
    return 1;
  }
}
