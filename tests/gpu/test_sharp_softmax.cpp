// GPU test of the backward where the softmax is sharp (scale 0.351 = 4/√D) and one query row sees
// 257 keys: dQ and dK are sums with cancellation (Σ_j dS_ij = 0), so how δ = Σ_j P·dP is formed shows.
// Sweep case #86 of 2026-11-30 (this shape, causal) failed the factor-3 rule once; see README, Known issues.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "attention_case.hpp"
#include "flash_variants.hpp"

namespace {

using attnforge::test::Case;
using attnforge::test::RunOptions;

// Every compiled backward variant of (f16, D 128, none) and unfused, 48 seeds of the sweep's shape:
// q (1, 1, 1, 128), k/v (1, 257, 1, 128), scale 0.351.
TEST(SharpSoftmax, OneQueryRowManySeeds) {
  if (!attnforge::test::has_cuda_device()) GTEST_SKIP() << "no CUDA device";
  std::vector<std::pair<std::string, RunOptions>> runs = {{"unfused", RunOptions{.backend = ATTNFORGE_BACKEND_UNFUSED}}};
  std::vector<attnforge::test::FlashVariant> bwd = attnforge::test::compiled_flash_variants("bwd");
  for (const auto& v : bwd)
    if (v.dtype == ATTNFORGE_F16 && v.head_dim == 128 && v.mask == "none")
      runs.push_back({v.name, RunOptions{.backend = ATTNFORGE_BACKEND_FLASH, .backward_variant = v.name.c_str()}});
  if (runs.size() == 1) GTEST_SKIP() << "no flash f16 hd128 none backward compiled";
  for (const float scale : {0.351f, 0.0f}) {  // 0: the default 1/√D
    for (const auto& [name, opt] : runs) {
      const attnforge::test::SeedsOutcome r = attnforge::test::check_seeds(
          48,
          [&](uint64_t seed) {
            Case c;
            c.dtype = ATTNFORGE_F16;
            c.head_dim = 128;
            c.seqlen_q = 1;    // q (1, 1, 1, 128)
            c.seqlen_k = 257;  // k, v (1, 257, 1, 128)
            c.scale = scale;
            c.seed = seed;
            return c;
          },
          opt);
      std::printf("[ sharp    ] scale %.3f %-48s %2d / 48 failed\n%s\n", scale, name.c_str(), r.failed, r.first.c_str());
      EXPECT_EQ(r.failed, 0) << name << " scale " << scale;
    }
  }
}

}  // namespace
