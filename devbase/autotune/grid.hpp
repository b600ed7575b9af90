// The shapes attnforge-tune tunes: `--shape k=v,...` strings and grid files in a small TOML subset
// (key = value, [[grid]] tables, arrays, comments), each table expanding to the product of its arrays.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "attnforge/attnforge.h"

namespace attnforge::tuner {

// One problem to tune, in one direction.
struct TuneShape {
  int batch = 1, seqlen_q = 0, seqlen_k = 0, heads_q = 0, heads_kv = 0, head_dim = 0;
  attnforge_dtype dtype = ATTNFORGE_BF16;
  std::string mask = "none";
  std::array<int64_t, ATTNFORGE_MAX_MASK_SCALARS> scalars = {-1, -1, -1, -1};  // window: left, right
  bool backward = false;

  // "fwd bf16 b=8 sq=4096 sk=4096 hq=16 hkv=16 d=128 causal"
  std::string label() const;
};

struct GridError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// `b=8,sq=4096,sk=4096,hq=16,hkv=16,d=128,dtype=bf16,mask=causal` → one shape per direction
// (dir=fwd|bwd|both, default both). Keys: b, s (= sq = sk), sq, sk (default sq), h (= hq = hkv),
// hq, hkv (default hq), d, dtype (f32|f16|bf16), mask, left, right (window), dir, and
// tokens / hidden (b = tokens / sq, hq = hidden / d) as in DESIGN.md's grids.
std::vector<TuneShape> parse_shape(const std::string& spec);

// A grid file: top-level keys are defaults for every table; each [[grid]] table is a product over
// its array values (a scalar is a one-element array), with the same keys as --shape.
std::vector<TuneShape> parse_grid_file(const std::string& path);
std::vector<TuneShape> parse_grid_text(const std::string& text, const std::string& origin);

// ---- the TOML subset -------------------------------------------------------------------------------
// Values: integers, floats, "strings" / 'strings', true / false, and arrays of those (may span
// lines). Tables: [name] and [[name]] (array of tables). Comments: # to end of line.
struct TomlValue {
  enum Kind { integer, floating, string, boolean, array } kind = integer;
  int64_t i = 0;
  double f = 0;
  std::string s;
  bool b = false;
  std::vector<TomlValue> items;
  std::string str() const;  // printable, for messages and expansion
};
struct TomlTable {
  std::string name;  // "" for the top level
  int line = 0;
  std::map<std::string, TomlValue> values;
};
// Top level first, then every table in file order. Throws GridError naming origin:line.
std::vector<TomlTable> parse_toml(const std::string& text, const std::string& origin);

}  // namespace attnforge::tuner
