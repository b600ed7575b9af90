// Shape specs and grid files for attnforge-tune: the TOML subset parser and the product expansion.
#include "grid.hpp"

#include <cctype>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

namespace attnforge::tuner {

namespace {

const char* dtype_name(attnforge_dtype t) {
  switch (t) {
    case ATTNFORGE_F32: return "f32";
    case ATTNFORGE_F16: return "f16";
    case ATTNFORGE_BF16: return "bf16";
    default: return "?";
  }
}

std::string trim(std::string s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

int64_t to_int(const std::string& v, const std::string& key, const std::string& where) {
  int64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size())
    throw GridError(where + ": expected an integer for " + key + ", got '" + v + "'");
  return x;
}

// One shape per direction from resolved key → value strings.
std::vector<TuneShape> build(const std::map<std::string, std::string>& kv, const std::string& where) {
  static const std::set<std::string> known = {"b", "s", "sq", "sk", "h", "hq", "hkv", "d", "dtype", "mask",
                                              "left", "right", "dir", "tokens", "hidden", "name"};
  for (const auto& [k, _] : kv)
    if (!known.count(k))
      throw GridError(where + ": unknown key '" + k +
                      "' (known: b, s, sq, sk, h, hq, hkv, d, dtype, mask, left, right, dir, tokens, hidden)");
  auto get = [&](const char* k) -> const std::string* {
    auto it = kv.find(k);
    return it == kv.end() ? nullptr : &it->second;
  };
  auto num = [&](const char* k) { return to_int(*get(k), k, where); };
  TuneShape s;
  if (!get("d")) throw GridError(where + ": missing d (head dim)");
  s.head_dim = int(num("d"));
  if (get("s")) s.seqlen_q = s.seqlen_k = int(num("s"));
  if (get("sq")) s.seqlen_q = int(num("sq"));
  if (get("sk")) s.seqlen_k = int(num("sk"));
  else if (!get("s")) s.seqlen_k = s.seqlen_q;
  if (s.seqlen_q <= 0 || s.seqlen_k <= 0) throw GridError(where + ": missing or non-positive s / sq / sk");
  if (get("b")) s.batch = int(num("b"));
  else if (get("tokens")) {
    const int64_t t = num("tokens");
    if (t % s.seqlen_q != 0)
      throw GridError(where + ": tokens " + std::to_string(t) + " is not a multiple of sq " + std::to_string(s.seqlen_q));
    s.batch = int(t / s.seqlen_q);
  }
  if (get("h")) s.heads_q = s.heads_kv = int(num("h"));
  else if (get("hidden")) {
    const int64_t h = num("hidden");
    if (h % s.head_dim != 0)
      throw GridError(where + ": hidden " + std::to_string(h) + " is not a multiple of d " + std::to_string(s.head_dim));
    s.heads_q = s.heads_kv = int(h / s.head_dim);
  }
  if (get("hq")) s.heads_q = int(num("hq"));
  if (get("hkv")) s.heads_kv = int(num("hkv"));
  else if (get("hq") && !get("h") && !get("hidden")) s.heads_kv = s.heads_q;
  if (s.batch <= 0 || s.heads_q <= 0 || s.heads_kv <= 0 || s.head_dim <= 0)
    throw GridError(where + ": b, heads and d must be positive (b=" + std::to_string(s.batch) + " hq=" +
                    std::to_string(s.heads_q) + " hkv=" + std::to_string(s.heads_kv) + " d=" +
                    std::to_string(s.head_dim) + ")");
  if (s.heads_q % s.heads_kv != 0)
    throw GridError(where + ": hq " + std::to_string(s.heads_q) + " is not a multiple of hkv " +
                    std::to_string(s.heads_kv));
  if (auto t = get("dtype")) {
    if (*t == "f32") s.dtype = ATTNFORGE_F32;
    else if (*t == "f16") s.dtype = ATTNFORGE_F16;
    else if (*t == "bf16") s.dtype = ATTNFORGE_BF16;
    else throw GridError(where + ": dtype must be f32, f16 or bf16, got '" + *t + "'");
  }
  if (auto m = get("mask")) s.mask = *m;
  if (get("left")) s.scalars[0] = num("left");
  if (get("right")) s.scalars[1] = num("right");
  std::string dir = get("dir") ? *get("dir") : "both";
  std::vector<TuneShape> out;
  if (dir == "fwd" || dir == "both") out.push_back(s);
  if (dir == "bwd" || dir == "both") {
    s.backward = true;
    out.push_back(s);
  }
  if (out.empty()) throw GridError(where + ": dir must be fwd, bwd or both, got '" + dir + "'");
  return out;
}

// Every combination of the arrays of `table` (over the defaults), in key order.
void expand(const std::map<std::string, TomlValue>& table, const std::string& where, std::vector<TuneShape>& out) {
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  for (const auto& [k, v] : table) {
    std::vector<std::string> vals;
    if (v.kind == TomlValue::array) {
      for (const auto& it : v.items) vals.push_back(it.str());
      if (vals.empty()) throw GridError(where + ": " + k + " is an empty array");
    } else {
      vals.push_back(v.str());
    }
    axes.emplace_back(k, std::move(vals));
  }
  std::vector<size_t> idx(axes.size(), 0);
  while (true) {
    std::map<std::string, std::string> kv;
    for (size_t a = 0; a < axes.size(); ++a) kv[axes[a].first] = axes[a].second[idx[a]];
    for (auto& s : build(kv, where)) out.push_back(std::move(s));
    size_t a = axes.size();
    while (a > 0) {
      --a;
      if (++idx[a] < axes[a].second.size()) break;
      idx[a] = 0;
      if (a == 0) return;
    }
    if (axes.empty()) return;
  }
}

// ---- TOML subset lexer -------------------------------------------------------------------------
struct Cursor {
  const std::string& t;
  size_t i = 0;
  int line = 1;
  const std::string& origin;
  [[noreturn]] void fail(const std::string& what) const {
    throw GridError(origin + ":" + std::to_string(line) + ": " + what);
  }
  bool eof() const { return i >= t.size(); }
  char peek() const { return eof() ? '\0' : t[i]; }
  // Skips spaces, tabs and comments; newlines too when `lines`.
  void skip(bool lines) {
    while (!eof()) {
      char c = t[i];
      if (c == '#') {
        while (!eof() && t[i] != '\n') ++i;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++i;
      } else if (c == '\n' && lines) {
        ++i;
        ++line;
      } else {
        break;
      }
    }
  }
};

TomlValue parse_value(Cursor& c) {
  c.skip(false);
  TomlValue v;
  const char ch = c.peek();
  if (ch == '[') {
    ++c.i;
    v.kind = TomlValue::array;
    while (true) {
      c.skip(true);
      if (c.peek() == ']') {
        ++c.i;
        break;
      }
      v.items.push_back(parse_value(c));
      c.skip(true);
      if (c.peek() == ',') {
        ++c.i;
        continue;
      }
      if (c.peek() == ']') {
        ++c.i;
        break;
      }
      c.fail("expected ',' or ']' in an array");
    }
    return v;
  }
  if (ch == '"' || ch == '\'') {
    ++c.i;
    v.kind = TomlValue::string;
    while (!c.eof() && c.peek() != ch) {
      if (c.peek() == '\n') c.fail("unterminated string");
      if (ch == '"' && c.peek() == '\\') {
        ++c.i;
        const char e = c.peek();
        v.s += e == 'n' ? '\n' : e == 't' ? '\t' : e;
        ++c.i;
        continue;
      }
      v.s += c.t[c.i++];
    }
    if (c.eof()) c.fail("unterminated string");
    ++c.i;
    return v;
  }
  // bare token: number or boolean
  size_t start = c.i;
  while (!c.eof() && (std::isalnum(static_cast<unsigned char>(c.peek())) || c.peek() == '-' || c.peek() == '+' ||
                      c.peek() == '.' || c.peek() == '_'))
    ++c.i;
  std::string tok = c.t.substr(start, c.i - start);
  if (tok.empty()) c.fail(std::string("expected a value, got '") + (c.eof() ? "end of file" : std::string(1, ch)) + "'");
  if (tok == "true" || tok == "false") {
    v.kind = TomlValue::boolean;
    v.b = tok == "true";
    return v;
  }
  std::string digits;
  for (char d : tok)
    if (d != '_') digits += d;
  int64_t i = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), i);
  if (ec == std::errc() && p == digits.data() + digits.size()) {
    v.kind = TomlValue::integer;
    v.i = i;
    return v;
  }
  try {
    size_t used = 0;
    v.f = std::stod(digits, &used);
    if (used != digits.size()) throw std::invalid_argument("");
    v.kind = TomlValue::floating;
    return v;
  } catch (...) {
    c.fail("cannot read value '" + tok + "' (this subset knows integers, floats, strings, booleans, arrays)");
  }
}

}  // namespace

std::string TomlValue::str() const {
  switch (kind) {
    case integer: return std::to_string(i);
    case floating: {
      std::ostringstream o;
      o << f;
      return o.str();
    }
    case string: return s;
    case boolean: return b ? "true" : "false";
    case array: {
      std::string r = "[";
      for (size_t k = 0; k < items.size(); ++k) r += (k ? ", " : "") + items[k].str();
      return r + "]";
    }
  }
  return "";
}

std::vector<TomlTable> parse_toml(const std::string& text, const std::string& origin) {
  std::vector<TomlTable> tables(1);
  Cursor c{text, 0, 1, origin};
  while (true) {
    c.skip(true);
    if (c.eof()) break;
    if (c.peek() == '[') {
      const bool array = c.i + 1 < text.size() && text[c.i + 1] == '[';
      c.i += array ? 2 : 1;
      size_t start = c.i;
      while (!c.eof() && c.peek() != ']' && c.peek() != '\n') ++c.i;
      std::string name = trim(text.substr(start, c.i - start));
      if (name.empty()) c.fail("empty table name");
      for (int k = 0; k < (array ? 2 : 1); ++k) {
        if (c.peek() != ']') c.fail(array ? "expected ']]'" : "expected ']'");
        ++c.i;
      }
      TomlTable t;
      t.name = name;
      t.line = c.line;
      if (!array)
        for (const auto& old : tables)
          if (old.name == name) c.fail("table [" + name + "] defined twice");
      tables.push_back(std::move(t));
    } else {
      size_t start = c.i;
      while (!c.eof() && c.peek() != '=' && c.peek() != '\n') ++c.i;
      if (c.peek() != '=') c.fail("expected 'key = value'");
      std::string key = trim(text.substr(start, c.i - start));
      if (key.size() >= 2 && (key.front() == '"' || key.front() == '\'') && key.back() == key.front())
        key = key.substr(1, key.size() - 2);
      if (key.empty()) c.fail("empty key");
      ++c.i;
      const int line = c.line;
      TomlValue v = parse_value(c);
      auto& vals = tables.back().values;
      if (vals.count(key)) c.fail("key '" + key + "' set twice");
      vals.emplace(key, std::move(v));
      c.skip(false);
      if (!c.eof() && c.peek() != '\n') {
        c.line = line;
        c.fail("unexpected text after the value of '" + key + "'");
      }
    }
  }
  return tables;
}

std::vector<TuneShape> parse_grid_text(const std::string& text, const std::string& origin) {
  const auto tables = parse_toml(text, origin);
  std::map<std::string, TomlValue> defaults = tables[0].values;
  defaults.erase("name");
  defaults.erase("description");
  std::vector<TuneShape> out;
  for (size_t t = 1; t < tables.size(); ++t) {
    if (tables[t].name != "grid")
      throw GridError(origin + ":" + std::to_string(tables[t].line) + ": unknown table [" + tables[t].name +
                      "] (use [[grid]])");
    std::map<std::string, TomlValue> merged = defaults;
    for (const auto& [k, v] : tables[t].values) merged[k] = v;
    expand(merged, origin + ":" + std::to_string(tables[t].line), out);
  }
  if (out.empty()) throw GridError(origin + ": no [[grid]] table");
  return out;
}

std::vector<TuneShape> parse_grid_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw GridError("cannot open grid file " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_grid_text(ss.str(), path);
}

std::vector<TuneShape> parse_shape(const std::string& spec) {
  std::map<std::string, std::string> kv;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) throw GridError("--shape " + spec + ": expected key=value, got '" + item + "'");
    std::string k = trim(item.substr(0, eq)), v = trim(item.substr(eq + 1));
    if (kv.count(k)) throw GridError("--shape " + spec + ": key '" + k + "' given twice");
    kv[k] = v;
  }
  return build(kv, "--shape " + spec);
}

std::string TuneShape::label() const {
  std::string s = std::string(backward ? "bwd" : "fwd") + " " + dtype_name(dtype) + " b=" + std::to_string(batch) +
                  " sq=" + std::to_string(seqlen_q) + " sk=" + std::to_string(seqlen_k) +
                  " hq=" + std::to_string(heads_q) + " hkv=" + std::to_string(heads_kv) +
                  " d=" + std::to_string(head_dim) + " " + mask;
  if (mask == "window") s += "(" + std::to_string(scalars[0]) + "," + std::to_string(scalars[1]) + ")";
  return s;
}

}  // namespace attnforge::tuner
