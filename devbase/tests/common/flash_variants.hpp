// The compiled flash variants of one direction, parsed from their canonical names
// flash_{dir}_{dt}_hd{D}_{mask}_m{M}n{N}w{W}s{S}[_sm90a]: what the flash GPU tests iterate over.
#pragma once
#include <regex>
#include <string>
#include <vector>

#include "attnforge/attnforge.h"

namespace attnforge::test {

struct FlashVariant {
  std::string name;
  attnforge_dtype dtype;
  int head_dim, block_m, block_n, warps, stages;
  std::string mask;
  int arch;  // 0: any GPU; 90: an sm_90a-only kernel (name suffix _sm90a)
};

// direction: "fwd" or "bwd"; in the library's (generator) order.
inline std::vector<FlashVariant> compiled_flash_variants(const std::string& direction) {
  const std::regex re("flash_" + direction + R"(_(f16|bf16)_hd(\d+)_(\w+?)_m(\d+)n(\d+)w(\d+)s(\d+)(_sm90a)?)");
  std::vector<FlashVariant> out;
  for (int i = 0; i < attnforge_variant_count(); ++i) {
    const std::string name = attnforge_variant_name(i);
    std::smatch m;
    if (!std::regex_match(name, m, re)) continue;
    out.push_back({name, m[1] == "f16" ? ATTNFORGE_F16 : ATTNFORGE_BF16, std::stoi(m[2]), std::stoi(m[4]),
                   std::stoi(m[5]), std::stoi(m[6]), std::stoi(m[7]), m[3], m[8].matched ? 90 : 0});
  }
  return out;
}

}  // namespace attnforge::test
