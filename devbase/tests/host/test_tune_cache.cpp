// Host tests of the tune cache file (runtime/src/tune_cache.cpp): round trip, every kind of bad
// file, unknown variants, the one-warning-per-process rule and four concurrent tuning processes.
#include <gtest/gtest.h>

#include <filesystem>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "tune_cache.hpp"

namespace attnforge::tune {
namespace {

// A build that knows two variants (the cache only asks "does this name exist?").
const std::set<std::string, std::less<>> kKnown = {"flash_fwd_bf16_hd128_causal_m128n64w4s2",
                                                   "fused_fwd_bf16_hd128_causal_m64w4"};
const VariantExists kExists = [](std::string_view n) { return kKnown.count(n) > 0; };

Metadata h100() {
  Metadata m;
  m.library_version = library_version();
  m.manifest_hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  m.device = DeviceInfo{"NVIDIA H100 80GB HBM3", 9, 0, 132, 13000, 13000};
  return m;
}

Key key(int sq, Direction d = Direction::fwd) {
  return Key::of(d, DType::bf16, 8, sq, sq, 16, 16, 128, "causal");
}

Entry entry(const std::string& winner = "flash_fwd_bf16_hd128_causal_m128n64w4s2") {
  Entry e;
  e.winner = winner;
  e.times_ms = {{"flash_fwd_bf16_hd128_causal_m128n64w4s2", 1.25},
                {"fused_fwd_bf16_hd128_causal_m64w4", 2.5}};
  e.rejected = {{"unfused_fwd_bf16_hdany_causal_w4", "numerics: max err 0.3 > bound 0.01"}};
  return e;
}

// A fresh directory per test under TMPDIR; the cache path inside it.
class TuneCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                       "/attnforge_tune_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/sub/tune.json";  // parent missing on purpose: save creates it
    reset_warning_for_testing();
    set_warning_sink([this](const std::string& m) { warnings_.push_back(m); });
  }
  void TearDown() override {
    set_warning_sink(nullptr);
    reset_warning_for_testing();
    std::error_code ec;  // best effort: a leftover temp directory fails nothing
    std::filesystem::remove_all(dir_, ec);
  }
  void write_raw(const std::string& bytes) {
    std::string d = dir_ + "/sub";
    ::mkdir(d.c_str(), 0755);
    std::ofstream f(path_, std::ios::binary);
    f << bytes;
  }
  std::string read_raw() {
    std::ifstream f(path_, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  std::string dir_, path_;
  std::vector<std::string> warnings_;
};

TEST(TuneKey, BucketsArePowersOfTwoAtOrAbove) {
  EXPECT_EQ(bucket(0), 1);
  EXPECT_EQ(bucket(1), 1);
  EXPECT_EQ(bucket(3), 4);
  EXPECT_EQ(bucket(4096), 4096);
  EXPECT_EQ(bucket(4097), 8192);
  Key k = Key::of(Direction::bwd, DType::f16, 3, 1000, 1, 32, 8, 64, "window");
  EXPECT_EQ(k.str(), "bwd|f16|hq32|hkv8|d64|window|sq1024|sk1|b4");
}

TEST(TuneKey, ParseRoundTripAndRejects) {
  Key k = key(4096, Direction::bwd);
  auto p = Key::parse(k.str());
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, k);
  for (const char* bad : {"", "fwd", "fwd|bf16|hq16|hkv16|d128|causal|sq4096|sk4096",
                          "fwd|bf16|hq16|hkv16|d128|causal|sq4096|sk4096|b8|x",
                          "sideways|bf16|hq16|hkv16|d128|causal|sq4096|sk4096|b8",
                          "fwd|bf16|hq16|hkv16|d128|causal|sq4000|sk4096|b8",  // not a bucket
                          "fwd|bf16|hq16|hkv5|d128|causal|sq4096|sk4096|b8",   // Hq % Hkv
                          "fwd|bf16|hq16|hkv16|d128|ca usal|sq4096|sk4096|b8",
                          "fwd|bf16|hq-1|hkv16|d128|causal|sq4096|sk4096|b8"})
    EXPECT_FALSE(Key::parse(bad).has_value()) << bad;
}

TEST(TuneKey, NearestPrefersExactThenClosestBucketInSameClass) {
  Entries es;
  es[key(1024)] = entry();
  es[key(8192)] = entry("fused_fwd_bf16_hd128_causal_m64w4");
  Key other = Key::of(Direction::fwd, DType::bf16, 8, 4096, 4096, 16, 16, 64, "causal");  // D=64
  es[other] = entry();
  EXPECT_EQ(nearest(es, key(1024))->first, key(1024));
  // 4096 is 2 steps (×2 for Sq and Sk) from 1024 and 1 step from 8192.
  EXPECT_EQ(nearest(es, key(4096))->first, key(8192));
  // Nothing of the class (bwd): none.
  EXPECT_EQ(nearest(es, key(4096, Direction::bwd)), nullptr);
  // Ties go to the larger buckets: 2048 is 1 step from 1024 and... add 4096 to tie.
  es[key(4096)] = entry();
  EXPECT_EQ(nearest(es, key(2048))->first, key(4096));
}

TEST_F(TuneCacheTest, RoundTrip) {
  Entries fresh{{key(1024), entry()}, {key(4096, Direction::bwd), entry()}};
  SaveResult s = save_merged(path_, h100(), fresh, kExists);
  ASSERT_TRUE(s.ok) << s.message;
  EXPECT_EQ(s.total_entries, 2u);
  LoadResult r = load(path_, h100(), kExists);
  ASSERT_EQ(r.status, LoadStatus::ok) << r.detail;
  EXPECT_EQ(r.entries, fresh);
  EXPECT_EQ(r.dropped, 0);
  EXPECT_TRUE(warnings_.empty());
  // The file names its metadata in readable JSON.
  std::string raw = read_raw();
  EXPECT_NE(raw.find("\"schema_version\": 1"), std::string::npos);
  EXPECT_NE(raw.find("NVIDIA H100 80GB HBM3"), std::string::npos);
  EXPECT_NE(raw.find("\"compute_capability\": \"9.0\""), std::string::npos);
}

TEST_F(TuneCacheTest, SaveMergesAndFreshWinsPerKey) {
  ASSERT_TRUE(save_merged(path_, h100(), {{key(1024), entry()}, {key(2048), entry()}}, kExists).ok);
  Entry changed = entry("fused_fwd_bf16_hd128_causal_m64w4");
  ASSERT_TRUE(save_merged(path_, h100(), {{key(2048), changed}, {key(4096), entry()}}, kExists).ok);
  LoadResult r = load(path_, h100(), kExists);
  ASSERT_EQ(r.status, LoadStatus::ok);
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.entries[key(2048)].winner, "fused_fwd_bf16_hd128_causal_m64w4");
  EXPECT_EQ(r.entries[key(1024)].winner, "flash_fwd_bf16_hd128_causal_m128n64w4s2");
}

TEST_F(TuneCacheTest, NoFileIsAQuietMiss) {
  LoadResult r = load(path_, h100(), kExists);
  EXPECT_EQ(r.status, LoadStatus::no_file);
  EXPECT_TRUE(r.entries.empty());
  EXPECT_TRUE(warnings_.empty());
}

// Each bad file: a miss with exactly one warning, and the next save replaces it.
struct BadFile {
  const char* name;
  std::string bytes;
};

class CorruptFiles : public TuneCacheTest, public ::testing::WithParamInterface<BadFile> {};

TEST_P(CorruptFiles, AreAMissWithOneWarningAndGetReplaced) {
  write_raw(GetParam().bytes);
  LoadResult r = load(path_, h100(), kExists);
  EXPECT_EQ(r.status, LoadStatus::corrupt) << r.detail;
  EXPECT_TRUE(r.entries.empty());
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find(path_), std::string::npos) << warnings_[0];
  // A second and third load in this process stay silent (counted, not printed).
  load(path_, h100(), kExists);
  load(path_, h100(), kExists);
  EXPECT_EQ(warnings_.size(), 1u);
  EXPECT_EQ(warnings_suppressed(), 2);
  // Saving replaces the unreadable file with a good one.
  SaveResult s = save_merged(path_, h100(), {{key(1024), entry()}}, kExists);
  ASSERT_TRUE(s.ok) << s.message;
  EXPECT_EQ(load(path_, h100(), kExists).status, LoadStatus::ok);
}

std::string good_text() {
  // A well-formed file, to cut and damage.
  return R"({"schema_version": 1, "library_version": ")" + library_version() +
         R"(", "manifest_hash": ")" + h100().manifest_hash +
         R"(", "device": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
         "sm_count": 132, "cuda_runtime": 13000, "cuda_driver": 13000},
         "entries": {"fwd|bf16|hq16|hkv16|d128|causal|sq1024|sk1024|b8":
                     {"winner": "flash_fwd_bf16_hd128_causal_m128n64w4s2", "times_ms": {}}}})";
}

INSTANTIATE_TEST_SUITE_P(
    TuneCache, CorruptFiles,
    ::testing::Values(
        BadFile{"empty", ""}, BadFile{"whitespace", "  \n"},
        BadFile{"truncated", good_text().substr(0, good_text().size() / 2)},
        BadFile{"truncated_last_byte", good_text().substr(0, good_text().size() - 1)},
        BadFile{"garbage", "\x01\x02not json at all"},
        BadFile{"invalid_utf8_in_string",
                R"({"schema_version": 1, "library_version": "0.1.)" "\xff\xfe" R"(", "entries": {}})"},
        BadFile{"invalid_utf8_outside", std::string("\xc3\x28") + good_text()},
        BadFile{"overlong_utf8", "{\"schema_version\": 1, \"x\": \"\xc0\xaf\"}"},
        BadFile{"nul_bytes", std::string("{\"schema_version\"\0: 1}", 22)},
        BadFile{"array", "[1, 2, 3]"}, BadFile{"number", "42"},
        BadFile{"entries_not_object",
                R"({"schema_version": 1, "manifest_hash": "x", "entries": [1]})"}),
    [](const ::testing::TestParamInfo<BadFile>& i) { return std::string(i.param.name); });

TEST_F(TuneCacheTest, WrongSchemaIsSoftIgnoredAndRewritten) {
  std::string t = good_text();
  t.replace(t.find("\"schema_version\": 1"), 19, "\"schema_version\": 7");
  write_raw(t);
  LoadResult r = load(path_, h100(), kExists);
  EXPECT_EQ(r.status, LoadStatus::soft_mismatch) << r.detail;
  EXPECT_NE(r.detail.find("schema_version 7"), std::string::npos) << r.detail;
  EXPECT_TRUE(r.entries.empty());
  EXPECT_TRUE(warnings_.empty());  // a stale file is normal, not worth a warning
  SaveResult s = save_merged(path_, h100(), {{key(2048), entry()}}, kExists);
  ASSERT_TRUE(s.ok) << s.message;
  LoadResult r2 = load(path_, h100(), kExists);
  ASSERT_EQ(r2.status, LoadStatus::ok);
  EXPECT_EQ(r2.entries.size(), 1u);  // the old schema's entry was not merged in
}

TEST_F(TuneCacheTest, MissingOrUnknownMetadataIsSoft) {
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"\"library_version\": \"" + library_version() + "\", ", ""},  // missing
      {"\"library_version\": \"" + library_version() + "\"", "\"library_version\": \"9.9.9\""},
      {"\"cuda_driver\": 13000", "\"cuda_driver\": 12080"},
      {"\"schema_version\": 1,", "\"schema_version\": 1, \"tuned_by\": \"someone\","},
      {"\"sm_count\": 132, ", ""},
  };
  for (const auto& [from, to] : edits) {
    std::string t = good_text();
    auto at = t.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    t.replace(at, from.size(), to);
    LoadResult r = parse(t, h100(), kExists);
    EXPECT_EQ(r.status, LoadStatus::soft_mismatch) << from << " → " << to << ": " << r.detail;
    EXPECT_TRUE(r.entries.empty());
  }
  EXPECT_EQ(parse(good_text(), h100(), kExists).status, LoadStatus::ok);
}

TEST_F(TuneCacheTest, OtherGpuIsHardIgnoredAndNeverOverwritten) {
  Metadata a100 = h100();
  a100.device = DeviceInfo{"NVIDIA A100-SXM4-80GB", 8, 0, 108, 13000, 13000};
  ASSERT_TRUE(save_merged(path_, a100, {{key(1024), entry()}}, kExists).ok);
  const std::string before = read_raw();

  LoadResult r = load(path_, h100(), kExists);
  EXPECT_EQ(r.status, LoadStatus::hard_mismatch);
  EXPECT_NE(r.detail.find("A100"), std::string::npos) << r.detail;
  EXPECT_TRUE(r.entries.empty());

  SaveResult s = save_merged(path_, h100(), {{key(2048), entry()}}, kExists);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.message.find("refusing"), std::string::npos) << s.message;
  EXPECT_EQ(read_raw(), before);  // untouched

  // Same GPU model, other SM count (a cut-down part): also another GPU.
  Metadata fewer = a100;
  fewer.device.sm_count = 100;
  EXPECT_EQ(load(path_, fewer, kExists).status, LoadStatus::hard_mismatch);

  // Explicit overwrite is possible.
  EXPECT_TRUE(save_merged(path_, h100(), {{key(2048), entry()}}, kExists, true).ok);
  EXPECT_EQ(load(path_, h100(), kExists).status, LoadStatus::ok);
}

TEST_F(TuneCacheTest, OtherManifestIsHard) {
  Metadata other = h100();
  other.manifest_hash = "ffff" + other.manifest_hash.substr(4);
  ASSERT_TRUE(save_merged(path_, other, {{key(1024), entry()}}, kExists).ok);
  LoadResult r = load(path_, h100(), kExists);
  EXPECT_EQ(r.status, LoadStatus::hard_mismatch);
  EXPECT_NE(r.detail.find("manifest"), std::string::npos);
  EXPECT_FALSE(save_merged(path_, h100(), {{key(2048), entry()}}, kExists).ok);
}

TEST_F(TuneCacheTest, UnknownVariantEntryIsAMissWithOneWarning) {
  Entries es{{key(1024), entry()}, {key(2048), entry("flash_fwd_bf16_hd128_causal_m256n256w16s9")}};
  // The tuner's build knew the variant; this build does not.
  VariantExists all = [](std::string_view) { return true; };
  ASSERT_TRUE(save_merged(path_, h100(), es, all).ok);
  LoadResult r = load(path_, h100(), kExists);
  ASSERT_EQ(r.status, LoadStatus::ok);
  EXPECT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.entries.count(key(2048)), 0u);
  EXPECT_EQ(r.dropped, 1);
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("m256n256w16s9"), std::string::npos) << warnings_[0];
  load(path_, h100(), kExists);
  EXPECT_EQ(warnings_.size(), 1u);
}

TEST_F(TuneCacheTest, MalformedEntriesAreDroppedNotFatal) {
  std::string t = good_text();
  ASSERT_EQ(t.substr(t.size() - 2), "}}");
  t.replace(t.size() - 2, 2,
            R"(, "not a key": {"winner": "x"}, "fwd|bf16|hq16|hkv16|d128|causal|sq2048|sk2048|b8": 5,
               "fwd|bf16|hq16|hkv16|d128|causal|sq4096|sk4096|b8": {"winner": "flash_fwd_bf16_hd128_causal_m128n64w4s2", "times_ms": {"a": "fast"}}}})");
  LoadResult r = parse(t, h100(), kExists);
  ASSERT_EQ(r.status, LoadStatus::ok) << r.detail;
  EXPECT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.dropped, 3);
}

TEST_F(TuneCacheTest, DefaultPathHonoursEnvironment) {
  auto keep = [](const char* n) { const char* v = std::getenv(n); return v ? std::string(v) : std::string("\x01"); };
  auto restore = [](const char* n, const std::string& v) {
    if (v == "\x01") ::unsetenv(n); else ::setenv(n, v.c_str(), 1);
  };
  const std::string o = keep("ATTNFORGE_TUNE_CACHE"), x = keep("XDG_CACHE_HOME"), h = keep("HOME");
  ::setenv("ATTNFORGE_TUNE_CACHE", "/a/b.json", 1);
  ::setenv("XDG_CACHE_HOME", "/xdg", 1);
  ::setenv("HOME", "/home/u", 1);
  EXPECT_EQ(default_path(), "/a/b.json");
  ::unsetenv("ATTNFORGE_TUNE_CACHE");
  EXPECT_EQ(default_path(), "/xdg/attnforge/tune.json");
  ::unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(default_path(), "/home/u/.cache/attnforge/tune.json");
  restore("ATTNFORGE_TUNE_CACHE", o);
  restore("XDG_CACHE_HOME", x);
  restore("HOME", h);
}

// A child process with stderr to a pipe; returns what it wrote and its exit status.
template <class F>
std::pair<std::string, int> in_child(F body) {
  int fds[2];
  if (::pipe(fds) != 0) return {"pipe failed", -1};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    set_warning_sink(nullptr);  // the real channel: stderr
    reset_warning_for_testing();
    ::_exit(body() ? 0 : 1);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  ::close(fds[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return {out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

TEST_F(TuneCacheTest, OneWarningPerProcessOnStderr) {
  write_raw("{\"truncated\": ");
  const std::string p = path_;
  auto [err, rc] = in_child([&] {
    for (int i = 0; i < 5; ++i)
      if (load(p, h100(), kExists).status != LoadStatus::corrupt) return false;
    return warnings_suppressed() == 4;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(count(err, "attnforge: warning:"), 1u) << err;
  EXPECT_NE(err.find("tune.json"), std::string::npos) << err;
  // A second process warns again (once).
  auto [err2, rc2] = in_child([&] { load(p, h100(), kExists); load(p, h100(), kExists); return true; });
  EXPECT_EQ(rc2, 0);
  EXPECT_EQ(count(err2, "attnforge: warning:"), 1u) << err2;
}

TEST_F(TuneCacheTest, FourConcurrentTunersLoseNothing) {
  constexpr int kProcs = 4, kEach = 25;
  // Start from a stale file so the first saver also exercises "replace".
  write_raw(R"({"schema_version": 0})");
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      set_warning_sink(nullptr);
      bool ok = true;
      for (int i = 0; i < kEach; ++i) {
        // Process p tunes Hq = 16·(p+1), one key per save, as a tuner does per shape.
        Key k = Key::of(Direction::fwd, DType::bf16, 1 << (i % 5), 1 << (i / 5 + 6), 4096,
                        16 * (p + 1), 16, 128, "causal");
        ok = save_merged(path_, h100(), {{k, entry()}}, kExists).ok && ok;
      }
      ::_exit(ok ? 0 : 1);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  LoadResult r = load(path_, h100(), kExists);
  ASSERT_EQ(r.status, LoadStatus::ok) << r.detail;
  EXPECT_EQ(r.entries.size(), size_t(kProcs * kEach));
  for (int p = 0; p < kProcs; ++p)
    for (int i = 0; i < kEach; ++i) {
      Key k = Key::of(Direction::fwd, DType::bf16, 1 << (i % 5), 1 << (i / 5 + 6), 4096,
                      16 * (p + 1), 16, 128, "causal");
      EXPECT_EQ(r.entries.count(k), 1u) << k.str();
    }
  // No temp files left behind.
  int temps = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/sub"))
    temps += e.path().filename().string().find("tmp") != std::string::npos;
  EXPECT_EQ(temps, 0);
}

TEST_F(TuneCacheTest, UnwritableLocationFailsCleanly) {
  SaveResult s = save_merged("/proc/attnforge/definitely/not/here.json", h100(),
                             {{key(1024), entry()}}, kExists);
  EXPECT_FALSE(s.ok);
  EXPECT_FALSE(s.message.empty());
  EXPECT_FALSE(save_merged("", h100(), {}, kExists).ok);
}

}  // namespace
}  // namespace attnforge::tune
