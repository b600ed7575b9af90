// What each bad input gets: one row per kind of mistake, checked (status, a key part of the message)
// and written as a markdown table — the README's error table (scripts/error_table.py copies it between
// the <!-- error-table --> markers). No GPU: fake device pointers, every call is rejected before a launch.
// Output: $ATTNFORGE_ERROR_TABLE, else error_table.md in the working directory.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "attnforge/attnforge.h"
#include "variant_key.hpp"
#include "sample_call.hpp"
#include "tensor_view.hpp"

namespace {

using attnforge::test::contiguous_tensor;

void* fake(uintptr_t i) { return attnforge::test::fake_pointer(i); }

attnforge_args valid_call() { return attnforge::test::sample_dense_call(); }
void make_varlen(attnforge_args& a) { attnforge::test::make_sample_varlen(a); }

enum class Call { forward, backward, workspace_size };

struct Row {
  const char* what;                           // the bad input, in words
  Call call;
  std::function<void(attnforge_args&)> bend;  // turns the valid call into the bad one
  attnforge_status status;                    // what it must get
  const char* says;                           // a part of the message it must contain ("" = any message)
};

const char* call_name(Call c) {
  return c == Call::forward ? "forward" : c == Call::backward ? "backward" : "workspace_size";
}

std::string cell(std::string s) {  // markdown table cell: escape pipes, keep one line
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += "\\|";
    else if (ch == '\n') out += ' ';
    else out += ch;
  }
  return out;
}

std::vector<Row> rows() {
  const int64_t big = int64_t(std::numeric_limits<int32_t>::max()) + 1;
  const auto INV = ATTNFORGE_INVALID_ARGUMENT, UNS = ATTNFORGE_UNSUPPORTED;
  using A = attnforge_args;
  return {
      // ---- pointers ----
      {"q.data is NULL", Call::forward, [](A& a) { a.q.data = nullptr; }, INV, "expected q to be a device pointer"},
      {"backward without the forward's LSE", Call::backward, [](A& a) { a.lse = attnforge_tensor{}; }, INV,
       "expected lse to be a device pointer"},
      {"backward without d_o", Call::backward, [](A& a) { a.d_o.data = nullptr; }, INV, "expected d_o"},
      // ---- dtypes ----
      {"k in f16, q in bf16", Call::forward, [](A& a) { a.k.dtype = ATTNFORGE_F16; }, INV,
       "expected q and k to have the same dtype, got bf16 and f16"},
      {"q, k, v, o of dtype bool", Call::forward,
       [](A& a) { a.q.dtype = a.k.dtype = a.v.dtype = a.o.dtype = ATTNFORGE_BOOL; }, INV, "f32, f16 or bf16"},
      {"a dtype value outside the enum (7)", Call::forward,
       [](A& a) { a.q.dtype = a.k.dtype = a.v.dtype = a.o.dtype = attnforge_dtype(7); }, INV, "dtype(7)"},
      {"o in f32, q in bf16", Call::forward, [](A& a) { a.o.dtype = ATTNFORGE_F32; }, INV, "same dtype"},
      {"dq in f16 (backward)", Call::backward, [](A& a) { a.dq.dtype = ATTNFORGE_F16; }, INV, "same dtype"},
      {"lse in bf16", Call::forward, [](A& a) { a.lse.dtype = ATTNFORGE_BF16; }, INV, "expected lse to have dtype f32"},
      // ---- ranks, sizes, strides ----
      {"q of rank 3 without cu_seqlens", Call::forward, [](A& a) { a.q = contiguous_tensor(fake(1), ATTNFORGE_BF16, {256, 8, 64}); },
       INV, "expected q to have rank 4"},
      {"a zero size (Sq = 0)", Call::forward, [](A& a) { a.q.sizes[1] = a.o.sizes[1] = 0; }, INV, "positive sizes"},
      {"a negative stride", Call::forward, [](A& a) { a.k.strides[1] = -128; }, INV, "non-negative strides"},
      {"last dim not contiguous (stride 2)", Call::forward, [](A& a) { a.v.strides[3] = 2; }, INV,
       "contiguous in its last dimension"},
      {"strides whose offsets overflow int64", Call::forward, [](A& a) { a.q.strides[0] = a.q.strides[1] = int64_t(1) << 62; }, INV,
       "overflow int64"},
      {"q and k of different batch sizes", Call::forward, [](A& a) { a.k.sizes[0] = a.v.sizes[0] = 3; }, INV,
       "same batch size"},
      {"q and k of different head dims", Call::forward, [](A& a) { a.k.sizes[3] = a.v.sizes[3] = 32; }, INV,
       "same head_dim"},
      {"k and v of different lengths", Call::forward, [](A& a) { a.v.sizes[1] = 255; }, INV,
       "expected k and v to have the same shape"},
      {"o shaped unlike q", Call::forward, [](A& a) { a.o.sizes[2] = 4; }, INV, "expected q and o to have the same shape"},
      {"dk shaped unlike k (backward)", Call::backward, [](A& a) { a.dk.sizes[1] = 128; }, INV, "same shape"},
      {"head_dim 2048", Call::forward,
       [](A& a) {
         for (auto* t : {&a.q, &a.k, &a.v, &a.o}) *t = contiguous_tensor(t->data, t->dtype, {2, t->sizes[1], t->sizes[2], 2048});
       },
       INV, "expected head_dim in [1, 1024]"},
      {"Hq = 8 not a multiple of Hkv = 3", Call::forward,
       [](A& a) {
         a.k = contiguous_tensor(fake(2), ATTNFORGE_BF16, {2, 256, 3, 64});
         a.v = contiguous_tensor(fake(3), ATTNFORGE_BF16, {2, 256, 3, 64});
       },
       INV, "multiple of the number of key/value heads"},
      {"Sq = 2^31 (over int32)", Call::forward, [big](A& a) { a.q.sizes[1] = a.o.sizes[1] = big, a.lse = {}; }, INV,
       "at most 2147418112"},
      {"lse of the wrong shape", Call::forward, [](A& a) { a.lse.sizes[2] = 64; }, INV, "expected lse to have shape"},
      // ---- varlen ----
      {"cu_seqlens_q without cu_seqlens_k", Call::forward,
       [](A& a) {
         make_varlen(a);
         a.cu_seqlens_k = nullptr;
       },
       INV, "both set or both NULL"},
      {"varlen with batch_varlen = 0", Call::forward,
       [](A& a) {
         make_varlen(a);
         a.batch_varlen = 0;
       },
       INV, "expected batch_varlen > 0"},
      {"varlen with max_seqlen_k = 0", Call::forward,
       [](A& a) {
         make_varlen(a);
         a.max_seqlen_k = 0;
       },
       INV, "expected max_seqlen_k > 0"},
      {"varlen with a dense (B, Hq, Sq) lse", Call::forward,
       [](A& a) {
         make_varlen(a);
         a.lse = contiguous_tensor(fake(5), ATTNFORGE_F32, {3, 8, 128});
       },
       INV, "lse"},
      {"attention weights with varlen", Call::forward,
       [](A& a) {
         make_varlen(a);
         a.weights = contiguous_tensor(fake(12), ATTNFORGE_BF16, {3, 8, 128, 256});
       },
       UNS, "not supported with cu_seqlens"},
      // ---- weights ----
      {"weights of the wrong shape", Call::forward,
       [](A& a) { a.weights = contiguous_tensor(fake(12), ATTNFORGE_BF16, {2, 8, 128, 255}); }, INV,
       "expected weights to have shape (B, Hq, Sq, Sk)"},
      {"weights not contiguous", Call::forward,
       [](A& a) {
         a.weights = contiguous_tensor(fake(12), ATTNFORGE_BF16, {2, 8, 128, 256});
         a.weights.strides[2] = 512;
       },
       INV, "expected weights to be contiguous"},
      {"weights requested from flash", Call::forward,
       [](A& a) {
         a.weights = contiguous_tensor(fake(12), ATTNFORGE_BF16, {2, 8, 128, 256});
         a.backend = ATTNFORGE_BACKEND_FLASH;
       },
       UNS, "flash cannot return the attention weights"},
      // ---- mask ----
      {"unknown mask kind 'diagonal'", Call::forward, [](A& a) { a.mask.kind = "diagonal"; }, INV,
       "unknown mask kind 'diagonal'"},
      {"window scalar over int32", Call::forward,
       [big](A& a) {
         a.mask.kind = "window";
         a.mask.scalars[0] = big;
       },
       INV, "to fit in int32"},
      {"mask 'bias' without a tensor", Call::forward, [](A& a) { a.mask.kind = "bias"; }, INV,
       "reads a tensor, but mask.bias.data is NULL"},
      {"bias of dtype f16 with bf16 q", Call::forward,
       [](A& a) {
         a.mask.kind = "bias";
         a.mask.bias = contiguous_tensor(fake(13), ATTNFORGE_F16, {1, 1, 128, 256});
       },
       INV, "expected mask.bias to have dtype"},
      {"bias of rank 2", Call::forward,
       [](A& a) {
         a.mask.kind = "bias";
         a.mask.bias = contiguous_tensor(fake(13), ATTNFORGE_BOOL, {128, 256});
       },
       INV, "expected mask.bias to have rank 4"},
      {"bias not broadcastable (Sk 7)", Call::forward,
       [](A& a) {
         a.mask.kind = "bias";
         a.mask.bias = contiguous_tensor(fake(13), ATTNFORGE_F32, {2, 8, 128, 7});
       },
       INV, "broadcastable to (B, Hq, Sq, Sk)"},
      {"a bias tensor with mask 'causal'", Call::forward,
       [](A& a) {
         a.mask.kind = "causal";
         a.mask.bias = contiguous_tensor(fake(13), ATTNFORGE_F32, {1, 1, 128, 256});
       },
       INV, "reads no tensor"},
      // ---- scale, backend, variant, budget ----
      {"scale = inf", Call::forward, [](A& a) { a.scale = std::numeric_limits<float>::infinity(); }, INV,
       "expected scale to be finite"},
      {"backend value 7", Call::forward, [](A& a) { a.backend = attnforge_backend(7); }, INV,
       "expected backend to be one of"},
      {"unknown variant name", Call::forward, [](A& a) { a.variant = "flash_fwd_bf16_hd64_none_nope"; }, INV,
       "unknown variant"},
      {"a variant of another head dim", Call::forward,
       [](A& a) {
         // the first compiled variant with a fixed head dim other than 64 (else one of another direction)
         for (const auto& v : attnforge::all_variants())
           if (v.key.head_dim != 0 && v.key.head_dim != 64) return void(a.variant = v.name);
         for (const auto& v : attnforge::all_variants())
           if (v.key.direction == attnforge::Direction::bwd) return void(a.variant = v.name);
       },
       UNS, "cannot run this call"},
      {"flash with head_dim 80 (not compiled)", Call::forward,
       [](A& a) {
         for (auto* t : {&a.q, &a.k, &a.v, &a.o}) *t = contiguous_tensor(t->data, t->dtype, {2, t->sizes[1], t->sizes[2], 80});
         a.backend = ATTNFORGE_BACKEND_FLASH;
       },
       UNS, ""},
      {"AUTO under a 1-byte memory budget", Call::forward,
       [](A& a) {
         a.lse = attnforge_tensor{};  // forward then needs a temporary LSE
         a.memory_budget = 1;
       },
       UNS, ""},
      {"args = NULL", Call::forward, nullptr, INV, "expected args to be a pointer, got NULL"},
      {"workspace_size with bytes = NULL", Call::workspace_size, nullptr, INV, "expected bytes to be a pointer"},
  };
}

std::string output_path() {
  const char* p = std::getenv("ATTNFORGE_ERROR_TABLE");
  return p && *p ? p : "error_table.md";
}

TEST(ErrorTable, EveryBadInputGetsItsStatusAndMessage) {
  std::string md =
      "| bad input | call | status | message (attnforge_last_error) |\n"
      "|---|---|---|---|\n";
  int n = 0;
  for (const Row& r : rows()) {
    attnforge_args a = valid_call();
    attnforge_status st;
    if (r.call == Call::workspace_size) {
      st = attnforge_workspace_size(&a, 0, nullptr);
    } else if (!r.bend) {
      st = attnforge_forward(nullptr, nullptr);
    } else {
      r.bend(a);
      st = r.call == Call::forward ? attnforge_forward(&a, nullptr) : attnforge_backward(&a, nullptr);
    }
    const std::string msg = attnforge_last_error();
    EXPECT_EQ(st, r.status) << r.what << ": " << msg;
    EXPECT_FALSE(msg.empty()) << r.what << ": a rejection without a message";
    EXPECT_NE(msg.find(r.says), std::string::npos) << r.what << ": message \"" << msg << "\" lacks \"" << r.says << "\"";
    md += "| " + cell(r.what) + " | " + call_name(r.call) + " | `" + attnforge_status_string(st) + "` | " + cell(msg) +
          " |\n";
    ++n;
  }
  std::ofstream out(output_path());
  ASSERT_TRUE(out) << "cannot write " << output_path();
  out << md;
  std::printf("[ errors   ] %d rows written to %s\n", n, output_path().c_str());
}

}  // namespace
