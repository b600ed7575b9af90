// Host tests of attnforge-tune's pieces that need no GPU: the shipped grid files expand to
// DESIGN.md's grids, --shape specs, TOML errors with file:line, the reduced numerics shape, and
// candidate enumeration against the compiled table.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "check.hpp"
#include "grid.hpp"
#include "problem.hpp"
#include "verify.hpp"

namespace attnforge::tuner {
namespace {

std::string grid(const char* name) { return std::string(ATTNFORGE_GRIDS_DIR) + "/" + name; }

TEST(TuneGrid, TrainingGridIsDesignsGrid) {
  const auto shapes = parse_grid_file(grid("training.toml"));
  ASSERT_EQ(shapes.size(), 48u);  // D ∈ {64,128} × S ∈ {512…16384} × {none, causal} × {fwd, bwd}
  std::set<int> seqlens, dims;
  int fwd = 0, causal = 0;
  for (const auto& s : shapes) {
    EXPECT_EQ(s.dtype, ATTNFORGE_BF16);
    EXPECT_EQ(s.batch * s.seqlen_q, 16384) << s.label();  // B·S = 16384 tokens
    EXPECT_EQ(s.heads_q * s.head_dim, 2048) << s.label();  // H·D = 2048
    EXPECT_EQ(s.heads_q, s.heads_kv);
    EXPECT_EQ(s.seqlen_q, s.seqlen_k);
    seqlens.insert(s.seqlen_q);
    dims.insert(s.head_dim);
    fwd += !s.backward;
    causal += s.mask == "causal";
  }
  EXPECT_EQ(seqlens, (std::set<int>{512, 1024, 2048, 4096, 8192, 16384}));
  EXPECT_EQ(dims, (std::set<int>{64, 128}));
  EXPECT_EQ(fwd, 24);
  EXPECT_EQ(causal, 24);
}

TEST(TuneGrid, DecodeAndClassicGrids) {
  const auto decode = parse_grid_file(grid("decode.toml"));
  ASSERT_EQ(decode.size(), 6u);
  for (const auto& s : decode) {
    EXPECT_EQ(s.seqlen_q, 1);
    EXPECT_FALSE(s.backward);
    EXPECT_EQ(s.batch, 16);
    EXPECT_EQ(s.heads_q, 32);
    EXPECT_EQ(s.head_dim, 128);
  }
  const auto classic = parse_grid_file(grid("classic.toml"));
  ASSERT_EQ(classic.size(), 30u);  // 5 configs × (2 multi-head + 1 single-head) × 2 directions
  for (const auto& s : classic) {
    EXPECT_EQ(s.mask, "causal");
    const int d_model = s.heads_q * s.head_dim;
    EXPECT_TRUE(d_model == 512 || d_model == 768 || d_model == 1024) << s.label();
  }
}

TEST(TuneGrid, WideHeadsGrid) {
  const auto shapes = parse_grid_file(grid("wide_heads.toml"));
  ASSERT_EQ(shapes.size(), 16u);  // D ∈ {192, 256} × S ∈ {1024…8192} × {none, causal}, forward
  std::set<int> dims;
  for (const auto& s : shapes) {
    EXPECT_FALSE(s.backward) << s.label();
    EXPECT_EQ(s.batch * s.seqlen_q, 16384) << s.label();
    EXPECT_EQ(s.heads_q, s.head_dim == 192 ? 10 : 8) << s.label();  // H·D = 1920 / 2048
    dims.insert(s.head_dim);
  }
  EXPECT_EQ(dims, (std::set<int>{192, 256}));
}

TEST(TuneGrid, ShapeSpecOfTheIssue) {
  const auto shapes = parse_shape("b=8,sq=4096,sk=4096,hq=16,hkv=16,d=128,dtype=bf16,mask=causal");
  ASSERT_EQ(shapes.size(), 2u);
  EXPECT_EQ(shapes[0].label(), "fwd bf16 b=8 sq=4096 sk=4096 hq=16 hkv=16 d=128 causal");
  EXPECT_EQ(shapes[1].label(), "bwd bf16 b=8 sq=4096 sk=4096 hq=16 hkv=16 d=128 causal");
  const auto gqa = parse_shape("b=2, s=100, hq=32, hkv=8, d=64, dtype=f16, mask=window, left=16, right=0, dir=fwd");
  ASSERT_EQ(gqa.size(), 1u);
  EXPECT_EQ(gqa[0].seqlen_k, 100);
  EXPECT_EQ(gqa[0].heads_kv, 8);
  EXPECT_EQ(gqa[0].scalars[0], 16);
  EXPECT_EQ(gqa[0].scalars[1], 0);
  EXPECT_EQ(parse_shape("tokens=16384,s=2048,hidden=2048,d=128")[0].batch, 8);
}

TEST(TuneGrid, BadSpecsSayWhat) {
  auto message = [](const std::string& spec) {
    try {
      parse_shape(spec);
    } catch (const GridError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message("b=1,s=8,h=2,d=64,colour=red").find("unknown key 'colour'"), std::string::npos);
  EXPECT_NE(message("b=1,s=8,hq=6,hkv=4,d=64").find("not a multiple of hkv"), std::string::npos);
  EXPECT_NE(message("b=1,s=8,h=2").find("missing d"), std::string::npos);
  EXPECT_NE(message("b=1,s=8,h=2,d=64,dir=sideways").find("dir must be"), std::string::npos);
  EXPECT_NE(message("b=x,s=8,h=2,d=64").find("expected an integer for b"), std::string::npos);
  EXPECT_NE(message("b=1,s=8,h=2,d=64,dtype=fp8").find("dtype must be"), std::string::npos);
}

TEST(TuneGrid, TomlSubsetAndItsErrors) {
  auto t = parse_toml("a = 1 # comment\nb = [1, 2,\n  3]\nc = 'x'\n[[grid]]\nd = \"y\"\ne = true\nf = 1.5\n", "t.toml");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].values.at("b").items.size(), 3u);
  EXPECT_EQ(t[0].values.at("c").s, "x");
  EXPECT_EQ(t[1].name, "grid");
  EXPECT_TRUE(t[1].values.at("e").b);
  EXPECT_DOUBLE_EQ(t[1].values.at("f").f, 1.5);
  auto error = [](const std::string& text) {
    try {
      parse_grid_text(text, "g.toml");
    } catch (const GridError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(error("[[grid]]\nd = \"unterminated\n").rfind("g.toml:2: unterminated string", 0), 0u);
  EXPECT_EQ(error("[[grid]]\nd = 64\nd = 32\n").rfind("g.toml:3: key 'd' set twice", 0), 0u);
  EXPECT_EQ(error("[[grid]]\ns = [1, 2\nd = 3\n").find("g.toml:3"), 0u);
  EXPECT_NE(error("[shapes]\nd = 1\n").find("unknown table [shapes]"), std::string::npos);
  EXPECT_NE(error("d = 64\n").find("no [[grid]] table"), std::string::npos);
  EXPECT_NE(error("[[grid]]\ns = 8\nh = 1\nd = []\n").find("empty array"), std::string::npos);
}

TEST(TuneCheck, ReducedShapeKeepsWhatTheVariantDependsOn) {
  TuneShape s = parse_shape("b=8,sq=4096,sk=4096,hq=32,hkv=8,d=128,mask=causal,dir=bwd")[0];
  TuneShape r = reduced_shape(s);
  EXPECT_EQ(r.batch, 1);
  EXPECT_EQ(r.seqlen_q, 192);
  EXPECT_EQ(r.seqlen_k, 192);            // equal stays equal (causal alignment unchanged)
  EXPECT_EQ(r.heads_q / r.heads_kv, 2);  // GQA kept
  EXPECT_EQ(r.head_dim, 128);
  EXPECT_EQ(r.mask, "causal");
  EXPECT_TRUE(r.backward);
  TuneShape decode = parse_shape("b=16,sq=1,sk=32768,h=32,d=128,dir=fwd")[0];
  TuneShape rd = reduced_shape(decode);
  EXPECT_EQ(rd.seqlen_q, 1);
  EXPECT_EQ(rd.seqlen_k, 256);
  EXPECT_GT(rd.seqlen_k, rd.seqlen_q);
}

TEST(TuneCandidates, OnlyVariantsOfTheShapeAndTheirLimits) {
  const TuneShape s = parse_shape("b=2,s=2048,h=4,d=64,dtype=bf16,mask=causal,dir=fwd")[0];
  const auto cands = enumerate_candidates(s, "");
  int runnable = 0;
  for (const auto& c : cands) {
    EXPECT_EQ(c.name.find("_fwd_bf16_"), c.backend.size()) << c.name;
    EXPECT_TRUE(c.name.find("_hd64_causal_") != std::string::npos || c.name.find("_hdany_causal_") != std::string::npos)
        << c.name;
    if (c.runnable) {
      ++runnable;
    } else {
      EXPECT_FALSE(c.why_not.empty()) << c.name;
    }
    // A fused variant is never runnable beyond its key-row limit (every built one is < 2048).
    if (c.backend == "fused") EXPECT_FALSE(c.runnable) << c.name;
  }
  EXPECT_GE(runnable, 1);  // unfused (any head dim) is in every build
  // A glob narrows them.
  for (const auto& c : enumerate_candidates(s, "unfused_*")) EXPECT_EQ(c.backend, "unfused");
}

}  // namespace
}  // namespace attnforge::tuner

// --verify's rule: the winner itself always holds (a second timing measures the device's spread);
// another variant holds within the slack; a pick that did not run never does.
TEST(TuneVerify, WinnerHoldsOthersWithinTheSlack) {
  using attnforge::tuner::pick_holds;
  EXPECT_TRUE(pick_holds("flash_a", 1.20, "flash_a", 1.00, 0.05));   // the winner, timed 20 % slower
  EXPECT_TRUE(pick_holds("flash_b", 1.04, "flash_a", 1.00, 0.05));   // within 5 %
  EXPECT_FALSE(pick_holds("flash_b", 1.06, "flash_a", 1.00, 0.05));  // 6 % behind
  EXPECT_TRUE(pick_holds("flash_b", 1.24, "flash_a", 1.00, 0.25));   // heuristics' slack
  EXPECT_FALSE(pick_holds("flash_a", -1.0, "flash_a", 1.00, 0.05));  // did not run
  EXPECT_TRUE(pick_holds("", 0.9, "", 1.00, 0.05));                  // no names: judged by time alone
  EXPECT_FALSE(pick_holds("flash_b", 1.00, "flash_a", -1.0, 0.05));  // no winner time to compare with
}
