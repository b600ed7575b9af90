// The compiled-variant table (dispatch.cpp) against the generator's manifest.json: same variants,
// same order, same keys and limits, canonical names derived in C++ equal to the generator's, unique
// keys and names; lookups, candidate order, the "what exists" message and the mask metadata.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "attnforge/attnforge.h"
#include "variant_key.hpp"

namespace attnforge {
namespace {

const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    std::ifstream in(std::string(ATTNFORGE_GENERATED_DIR) + "/manifest.json");
    if (!in) throw std::runtime_error(std::string("cannot open ") + ATTNFORGE_GENERATED_DIR + "/manifest.json");
    return nlohmann::json::parse(in);
  }();
  return m;
}

TEST(DispatchTable, MatchesManifest) {
  const auto& vs = manifest().at("variants");
  const auto table = all_variants();
  ASSERT_EQ(table.size(), vs.size());
  ASSERT_EQ(attnforge_variant_count(), int(vs.size()));
  for (size_t i = 0; i < table.size(); ++i) {
    const auto& m = vs[i];
    const VariantInfo& v = table[i];
    SCOPED_TRACE(m.at("name").get<std::string>());
    // The C++ name is derived from the key (dispatch.cpp); it must equal the generator's alias.
    EXPECT_EQ(std::string(v.name), m.at("name").get<std::string>());
    EXPECT_STREQ(attnforge_variant_name(int(i)), v.name);
    EXPECT_EQ(to_string(v.key.backend), m.at("backend").get<std::string>());
    EXPECT_EQ(to_string(v.key.direction), m.at("direction").get<std::string>());
    EXPECT_EQ(to_string(v.key.dtype), m.at("dtype").get<std::string>());
    EXPECT_EQ(v.key.head_dim, m.at("head_dim").get<int>());
    EXPECT_EQ(mask_name(v.key.mask_id), m.at("mask").get<std::string>());
    EXPECT_EQ(v.key.block_m, m.at("tile").at("m").get<int>());
    EXPECT_EQ(v.key.block_n, m.at("tile").at("n").get<int>());
    EXPECT_EQ(v.key.warps, m.at("tile").at("w").get<int>());
    EXPECT_EQ(v.key.stages, m.at("tile").at("s").get<int>());
    EXPECT_EQ(v.key.arch, m.at("tile").at("arch").get<std::string>() == "sm90a" ? 90 : 0);
    const auto& limits = m.at("limits");
    EXPECT_EQ(max_seqlen_k(v.key), limits.contains("max_seqlen_k") ? limits.at("max_seqlen_k").get<int>() : 0);
    EXPECT_NE(v.launch, nullptr);
    EXPECT_EQ(find_variant(v.name), &v);
  }
}

TEST(DispatchTable, KeysAndNamesUnique) {
  std::set<std::string> names;
  const auto table = all_variants();
  for (size_t i = 0; i < table.size(); ++i) {
    EXPECT_TRUE(names.insert(table[i].name).second) << table[i].name;
    for (size_t j = i + 1; j < table.size(); ++j) EXPECT_FALSE(table[i].key == table[j].key) << table[i].name;
  }
}

TEST(DispatchTable, ManifestHashAndMasks) {
  EXPECT_EQ(std::string(manifest_hash()), manifest().at("hash").get<std::string>());
  const auto& masks = manifest().at("masks");
  ASSERT_EQ(mask_count(), int(masks.size()));
  for (const auto& m : masks) {
    const int id = m.at("id").get<int>();
    EXPECT_EQ(mask_id_by_name(m.at("name").get<std::string>()), id);
    EXPECT_EQ(mask_name(id), m.at("name").get<std::string>());
    EXPECT_EQ(mask_num_scalars(id), int(m.at("scalars").size()));
    EXPECT_EQ(mask_has_tensor(id), m.at("tensor").get<bool>());
  }
  EXPECT_EQ(mask_id_by_name("nope"), -1);
  EXPECT_EQ(mask_name(mask_count()), nullptr);
  EXPECT_EQ(find_variant("nope"), nullptr);
  EXPECT_EQ(attnforge_variant_name(-1), nullptr);
  EXPECT_EQ(attnforge_variant_name(attnforge_variant_count()), nullptr);
}

TEST(DispatchTable, MaskPredicates) {
  const MaskScalars none{{-1, -1, -1, -1}};
  const int causal = mask_id_by_name("causal"), window = mask_id_by_name("window");
  ASSERT_GE(causal, 0);
  ASSERT_GE(window, 0);
  // Causal, bottom-right aligned: Sq = 2, Sk = 4 ⇒ query 0 sees keys 0..2, query 1 sees 0..3.
  EXPECT_TRUE(mask_visible(causal, 0, 2, 2, 4, none));
  EXPECT_FALSE(mask_visible(causal, 0, 3, 2, 4, none));
  EXPECT_TRUE(mask_visible(causal, 1, 3, 2, 4, none));
  // Sq > Sk: query 0 of Sq = 4, Sk = 2 sees nothing (0 ≤ 0 + 2 − 4 is false).
  EXPECT_FALSE(mask_visible(causal, 0, 0, 4, 2, none));
  EXPECT_TRUE(mask_visible(causal, 2, 0, 4, 2, none));
  // Window (left 1, right 0) on Sq = Sk = 8: query 5 sees keys 4 and 5.
  const MaskScalars lr{{1, 0, 0, 0}};
  for (int j = 0; j < 8; ++j) EXPECT_EQ(mask_visible(window, 5, j, 8, 8, lr), j == 4 || j == 5) << j;
  // Unbounded window = every key.
  for (int j = 0; j < 8; ++j) EXPECT_TRUE(mask_visible(window, 5, j, 8, 8, none));
  EXPECT_TRUE(mask_visible(mask_id_by_name("none"), 0, 7, 1, 8, none));
}

// Some tests below need the exact default set (codegen/variants/default.toml, no --filter).
bool is_default_set() {
  return manifest().at("config") == "codegen/variants/default.toml" && manifest().value("filter", nlohmann::json::array()).empty();
}

TEST(DispatchTable, CandidatesExactHeadDimFirst) {
  const int causal = mask_id_by_name("causal");
  auto c = candidates(Backend::flash, Direction::fwd, DType::bf16, 128, causal);
  if (c.empty()) GTEST_SKIP() << "no flash bf16 hd128 causal forward in this build";
  for (const VariantInfo* v : c) {
    EXPECT_EQ(v->key.head_dim, 128);
    EXPECT_EQ(v->key.mask_id, causal);
    EXPECT_EQ(v->key.direction, Direction::fwd);
  }
  // Generator order is preference order.
  for (size_t i = 1; i < c.size(); ++i) EXPECT_LT(c[i - 1], c[i]);
  if (!is_default_set()) GTEST_SKIP() << "the rest needs the default variant set";
  auto u = candidates(Backend::unfused, Direction::bwd, DType::f16, 80, causal);
  ASSERT_FALSE(u.empty());
  EXPECT_EQ(u.front()->key.head_dim, kHeadDimAny);
  EXPECT_TRUE(candidates(Backend::flash, Direction::fwd, DType::bf16, 80, causal).empty());
}

TEST(DispatchTable, DescribeMissing) {
  if (!is_default_set()) GTEST_SKIP() << "needs the default variant set";
  const int causal = mask_id_by_name("causal");
  EXPECT_EQ(describe_missing(Backend::flash, Direction::fwd, DType::bf16, 80, causal),
            "flash has no head_dim 80 for bf16 (fwd, causal); built: 32, 64, 96, 128, 192, 256");
  EXPECT_EQ(describe_missing(Backend::flash, Direction::fwd, DType::f32, 64, causal),
            "flash has no f32 variants; built: f16, bf16");
  EXPECT_EQ(describe_missing(Backend::fused, Direction::bwd, DType::f32, 64, causal),
            "fused has no f32 variants; built: f16, bf16");
}

TEST(DispatchTable, ToString) {
  EXPECT_STREQ(to_string(Backend::unfused), "unfused");
  EXPECT_STREQ(to_string(Backend::fused), "fused");
  EXPECT_STREQ(to_string(Backend::flash), "flash");
  EXPECT_STREQ(to_string(Direction::bwd), "bwd");
  EXPECT_STREQ(to_string(DType::bf16), "bf16");
  EXPECT_STREQ(to_string(DType::f16), "f16");
  EXPECT_STREQ(to_string(DType::f32), "f32");
}

}  // namespace
}  // namespace attnforge
