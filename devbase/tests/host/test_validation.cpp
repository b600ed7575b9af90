// Argument validation through the C API: exact PyTorch-style messages for bad inputs, the status
// code, and that a rejected call never reaches selection or a launch (fake device pointers: any
// launch attempt would fail differently). No GPU needed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "attnforge/attnforge.h"
#include "select.hpp"
#include "validate.hpp"
#include "sample_call.hpp"
#include "tensor_view.hpp"

namespace {

using attnforge::test::contiguous_tensor;

void* fake(uintptr_t i) { return attnforge::test::fake_pointer(i); }

// A valid dense bf16 call: B=2, Sq=128, Sk=256, Hq=8, Hkv=2, D=64; backward tensors filled too.
struct Validation : ::testing::Test {
  attnforge_args a;
  void SetUp() override {
    a = attnforge::test::sample_dense_call();
    a.backend = ATTNFORGE_BACKEND_UNFUSED;
  }
  void make_varlen() { attnforge::test::make_sample_varlen(a); }
  // The forward rejects with `status` and exactly `message`; workspace_size and select_backend agree.
  void expect_forward(attnforge_status status, const std::string& message) {
    EXPECT_EQ(attnforge_forward(&a, nullptr), status);
    EXPECT_EQ(std::string(attnforge_last_error()), message);
    size_t bytes = 1;
    EXPECT_EQ(attnforge_workspace_size(&a, 0, &bytes), status);
    EXPECT_EQ(bytes, 0u);
    char reason[512];
    attnforge_backend chosen = ATTNFORGE_BACKEND_AUTO;
    EXPECT_EQ(attnforge_select_backend(&a, 0, &chosen, nullptr, 0, reason, sizeof reason), status);
    EXPECT_EQ(std::string(reason), message);
  }
  void expect_backward(attnforge_status status, const std::string& message) {
    EXPECT_EQ(attnforge_backward(&a, nullptr), status);
    EXPECT_EQ(std::string(attnforge_last_error()), message);
  }
  // The args pass validation (checked without a GPU through select_backend). Selection may still
  // find no variant in a filtered build (UNSUPPORTED); that is not a validation failure.
  attnforge_status expect_valid(int is_backward = 0) {
    char reason[512];
    attnforge_backend chosen = ATTNFORGE_BACKEND_AUTO;
    const attnforge_status s = attnforge_select_backend(&a, is_backward, &chosen, nullptr, 0, reason, sizeof reason);
    EXPECT_TRUE(s == ATTNFORGE_OK || s == ATTNFORGE_UNSUPPORTED) << reason;
    return s;
  }
};

TEST_F(Validation, ValidCallsPass) {
  expect_valid(0);
  expect_valid(1);
  make_varlen();
  expect_valid(0);
}

TEST_F(Validation, NullArgs) {
  EXPECT_EQ(attnforge_forward(nullptr, nullptr), ATTNFORGE_INVALID_ARGUMENT);
  EXPECT_STREQ(attnforge_last_error(), "expected args to be a pointer, got NULL");
}

TEST_F(Validation, NullPointers) {
  a.q.data = nullptr;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected q to be a device pointer (the queries), got q.data = NULL");
  SetUp();
  a.d_o.data = nullptr;
  expect_backward(ATTNFORGE_INVALID_ARGUMENT,
                  "expected d_o to be a device pointer (the output gradient), got d_o.data = NULL");
  SetUp();
  a.lse.data = nullptr;
  expect_backward(ATTNFORGE_INVALID_ARGUMENT,
                  "expected lse to be a device pointer (the forward's log-sum-exp), got lse.data = NULL");
}

TEST_F(Validation, Dtypes) {
  a.k.dtype = ATTNFORGE_F16;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected q and k to have the same dtype, got bf16 and f16");
  SetUp();
  a.q.dtype = a.k.dtype = a.v.dtype = a.o.dtype = ATTNFORGE_BOOL;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected q to have dtype f32, f16 or bf16, got bool");
  SetUp();
  a.o.dtype = ATTNFORGE_F32;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected q and o to have the same dtype, got bf16 and f32");
  SetUp();
  a.lse.dtype = ATTNFORGE_BF16;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected lse to have dtype f32, got bf16");
  SetUp();
  a.dv.dtype = ATTNFORGE_F16;
  expect_backward(ATTNFORGE_INVALID_ARGUMENT, "expected q and dv to have the same dtype, got bf16 and f16");
}

TEST_F(Validation, Ranks) {
  a.q = contiguous_tensor(fake(1), ATTNFORGE_BF16, {256, 8, 64});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected q to have rank 4 (B, Sq, Hq, D), got rank 3");
  SetUp();
  make_varlen();
  a.k = contiguous_tensor(fake(2), ATTNFORGE_BF16, {2, 256, 2, 64});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected k to have rank 3 (total_k, Hkv, D) with cu_seqlens, got rank 4");
}

TEST_F(Validation, SizesAndStrides) {
  a.q.sizes[1] = 0;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected q to have positive sizes, got (2, 0, 8, 64)");
  SetUp();
  a.k.strides[3] = 2;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected k to be contiguous in its last dimension (stride 1), got strides (32768, 128, 64, 2)");
  SetUp();
  a.v.strides[0] = -1;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected v to have non-negative strides, got (-1, 128, 64, 1)");
  SetUp();
  a.q.strides[1] = int64_t(1) << 62;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "q is too large: its element offsets overflow int64 (sizes (2, 128, 8, 64), strides "
                 "(65536, 4611686018427387904, 64, 1))");
}

TEST_F(Validation, ShapeAgreement) {
  a.k.sizes[0] = a.v.sizes[0] = 3;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected q and k to have the same batch size, got 2 and 3");
  SetUp();
  a.k = contiguous_tensor(fake(2), ATTNFORGE_BF16, {2, 256, 2, 128});
  a.v = contiguous_tensor(fake(3), ATTNFORGE_BF16, {2, 256, 2, 128});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected q and k to have the same head_dim, got 64 and 128");
  SetUp();
  a.v = contiguous_tensor(fake(3), ATTNFORGE_BF16, {2, 255, 2, 64});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected k and v to have the same shape, got (2, 256, 2, 64) and (2, 255, 2, 64)");
  SetUp();
  a.o = contiguous_tensor(fake(4), ATTNFORGE_BF16, {2, 128, 4, 64});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected q and o to have the same shape, got (2, 128, 8, 64) and (2, 128, 4, 64)");
  SetUp();
  a.lse = contiguous_tensor(fake(5), ATTNFORGE_F32, {2, 128, 8});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected lse to have shape (B, Hq, Sq) = (2, 8, 128), got (2, 128, 8)");
  SetUp();
  a.dk = contiguous_tensor(fake(8), ATTNFORGE_BF16, {2, 256, 8, 64});
  expect_backward(ATTNFORGE_INVALID_ARGUMENT,
                  "expected k and dk to have the same shape, got (2, 256, 2, 64) and (2, 256, 8, 64)");
}

TEST_F(Validation, HeadDimAndHeads) {
  for (attnforge_tensor* t : {&a.q, &a.k, &a.v, &a.o}) {
    const int64_t s[4] = {t->sizes[0], t->sizes[1], t->sizes[2], 2048};
    *t = contiguous_tensor(t->data, ATTNFORGE_BF16, {s[0], s[1], s[2], s[3]});
  }
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected head_dim in [1, 1024], got 2048");
  SetUp();
  a.k = contiguous_tensor(fake(2), ATTNFORGE_BF16, {2, 256, 3, 64});
  a.v = contiguous_tensor(fake(3), ATTNFORGE_BF16, {2, 256, 3, 64});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected the number of query heads to be a multiple of the number of key/value heads, got Hq = 8 "
                 "and Hkv = 3");
}

TEST_F(Validation, Int32Limits) {
  // 65536 sequences of 65536 queries: 2^32 rows do not fit the kernels' int32 row index.
  a.q = contiguous_tensor(fake(1), ATTNFORGE_BF16, {65536, 65536, 8, 64});
  a.o = a.q;
  a.o.data = fake(4);
  a.k = contiguous_tensor(fake(2), ATTNFORGE_BF16, {65536, 4, 2, 64});
  a.v = a.k;
  a.v.data = fake(3);
  a.lse = {};
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected the number of query rows B*Sq to be at most 2147483647 (kernels index it with int32), got "
                 "4294967296");
}

// Kernels round lengths up to whole tiles in int32: a length within int32 but less than 2^16 below
// its end is refused (a stride-0 q makes such a dense call cheap to describe).
TEST_F(Validation, SeqlenLeavesRoomForTileRounding) {
  for (auto* t : {&a.q, &a.o}) {
    *t = contiguous_tensor(t->data, ATTNFORGE_BF16, {1, 2147418113, 8, 64});
    t->strides[1] = 0;
  }
  for (auto* t : {&a.k, &a.v}) *t = contiguous_tensor(t->data, ATTNFORGE_BF16, {1, 256, 2, 64});
  a.lse = {};
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected Sq to be at most 2147418112 (kernels round it up to whole tiles in int32), got 2147418113");
}

// No sequence is longer than all tokens: looser max_seqlen bounds become the token counts.
TEST_F(Validation, VarlenMaxSeqlenIsClampedToTheTokenCount) {
  make_varlen();
  a.max_seqlen_q = std::numeric_limits<int32_t>::max();
  a.max_seqlen_k = std::numeric_limits<int32_t>::max();
  attnforge::ValidatedCall call;
  std::string error;
  ASSERT_EQ(attnforge::validate_args(a, attnforge::Direction::fwd, call, error), ATTNFORGE_OK) << error;
  EXPECT_EQ(call.params.seqlen_q, 300);  // total_q
  EXPECT_EQ(call.params.seqlen_k, 500);  // total_k
  make_varlen();
  ASSERT_EQ(attnforge::validate_args(a, attnforge::Direction::fwd, call, error), ATTNFORGE_OK) << error;
  EXPECT_EQ(call.params.seqlen_q, 128);  // a tighter bound stays as given
  EXPECT_EQ(call.params.seqlen_k, 256);
}

TEST_F(Validation, Varlen) {
  make_varlen();
  a.cu_seqlens_k = nullptr;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected cu_seqlens_q and cu_seqlens_k to be both set or both NULL, got cu_seqlens_q set and "
                 "cu_seqlens_k NULL");
  make_varlen();
  a.batch_varlen = 0;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected batch_varlen > 0 with cu_seqlens, got 0");
  make_varlen();
  a.max_seqlen_k = 0;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected max_seqlen_k > 0 with cu_seqlens, got 0");
  make_varlen();
  a.lse = contiguous_tensor(fake(5), ATTNFORGE_F32, {3, 8, 128});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected lse to have rank 2 (Hq, total_q) with cu_seqlens, got rank 3");
  make_varlen();
  a.weights = contiguous_tensor(fake(12), ATTNFORGE_BF16, {3, 8, 128, 256});
  expect_forward(ATTNFORGE_UNSUPPORTED, "returning the attention weights is not supported with cu_seqlens (varlen)");
}

TEST_F(Validation, Weights) {
  a.weights = contiguous_tensor(fake(12), ATTNFORGE_BF16, {2, 8, 128, 255});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected weights to have shape (B, Hq, Sq, Sk) = (2, 8, 128, 256), got (2, 8, 128, 255)");
  SetUp();
  a.weights = contiguous_tensor(fake(12), ATTNFORGE_BF16, {2, 8, 128, 256});
  a.weights.strides[1] = 128 * 512;
  a.weights.strides[0] = 8 * 128 * 512;
  a.weights.strides[2] = 512;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected weights to be contiguous with strides (262144, 32768, 256, 1), got (524288, 65536, 512, 1)");
  SetUp();
  a.weights = contiguous_tensor(fake(12), ATTNFORGE_BF16, {2, 8, 128, 256});
  a.backend = ATTNFORGE_BACKEND_FLASH;
  expect_forward(ATTNFORGE_UNSUPPORTED, "flash cannot return the attention weights (weights was given)");
}

TEST_F(Validation, Mask) {
  a.mask.kind = "diagonal";
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "unknown mask kind 'diagonal'; this build knows: none, causal, window, bias");
  SetUp();
  a.mask.kind = "window";
  a.mask.scalars[0] = int64_t(1) << 40;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected mask.scalars[0] of mask kind 'window' to fit in int32, got 1099511627776");
  SetUp();
  a.mask.kind = "bias";
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "mask kind 'bias' reads a tensor, but mask.bias.data is NULL");
  SetUp();
  a.mask.kind = "causal";
  a.mask.bias = contiguous_tensor(fake(13), ATTNFORGE_F32, {1, 1, 128, 256});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "mask kind 'causal' reads no tensor, but mask.bias.data is set; use mask kind 'bias'");
  SetUp();
  a.mask.kind = "bias";
  a.mask.bias = contiguous_tensor(fake(13), ATTNFORGE_F16, {1, 1, 128, 256});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected mask.bias to have dtype f32, bool or the dtype of q (bf16), got f16");
  SetUp();
  a.mask.kind = "bias";
  a.mask.bias = contiguous_tensor(fake(13), ATTNFORGE_BOOL, {2, 4, 128, 256});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected mask.bias to be broadcastable to (B, Hq, Sq, Sk) = (2, 8, 128, 256), got (2, 4, 128, 256)");
  SetUp();
  a.mask.kind = "bias";
  a.mask.bias = contiguous_tensor(fake(13), ATTNFORGE_BOOL, {128, 256});
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected mask.bias to have rank 4 (B, Hq, Sq, Sk), got rank 2");
  // Broadcast dims (size 1, any stride) are fine.
  SetUp();
  a.mask.kind = "bias";
  a.mask.bias = contiguous_tensor(fake(13), ATTNFORGE_BOOL, {1, 8, 1, 256});
  a.mask.bias.strides[0] = 12345;
  expect_valid();
}

TEST_F(Validation, Scale) {
  a.scale = std::numeric_limits<float>::infinity();
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected scale to be finite, got inf");
  SetUp();
  a.scale = std::numeric_limits<float>::quiet_NaN();  // NaN means "default"
  expect_valid();
  // Kernels take scale·log2(e): finite up to FLT_MAX / log2(e) ≈ 2.36e38.
  SetUp();
  a.scale = -2.0e38f;
  expect_valid();
  SetUp();
  a.scale = 2.4e38f;
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected |scale| * log2(e) to be finite, got scale = " + std::to_string(a.scale));
}

TEST_F(Validation, Selection) {
  a.variant = "flash_fwd_bf16_hd80_causal_m128n64w4s2";
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, std::string("unknown variant 'flash_fwd_bf16_hd80_causal_m128n64w4s2' "
                                                         "(attnforge_variant_name lists the ") +
                                                 std::to_string(attnforge_variant_count()) + " compiled variants)");
  SetUp();
  a.backend = attnforge_backend(7);
  expect_forward(ATTNFORGE_INVALID_ARGUMENT, "expected backend to be one of AUTO, UNFUSED, FUSED, FLASH, got 7");
}

TEST_F(Validation, EnvBackend) {
  a.backend = ATTNFORGE_BACKEND_AUTO;
  setenv("ATTNFORGE_BACKEND", "cudnn", 1);
  attnforge::select_reset();  // the environment is read once per process
  expect_forward(ATTNFORGE_INVALID_ARGUMENT,
                 "expected ATTNFORGE_BACKEND to be one of auto, unfused, fused, flash, got 'cudnn'");
  unsetenv("ATTNFORGE_BACKEND");
  attnforge::select_reset();
}

TEST_F(Validation, LastErrorIsPerCallAndStatusStrings) {
  a.q.data = nullptr;
  EXPECT_EQ(attnforge_forward(&a, nullptr), ATTNFORGE_INVALID_ARGUMENT);
  EXPECT_STRNE(attnforge_last_error(), "");
  SetUp();
  if (expect_valid() == ATTNFORGE_OK) {
    EXPECT_STREQ(attnforge_last_error(), "");
  }
  EXPECT_STREQ(attnforge_status_string(ATTNFORGE_UNSUPPORTED), "ATTNFORGE_UNSUPPORTED");
  EXPECT_STREQ(attnforge_backend_name(ATTNFORGE_BACKEND_FLASH), "flash");
  EXPECT_STREQ(attnforge_version(), "0.1.0");
}

TEST(ArgsInit, Defaults) {
  attnforge_args a;
  std::memset(&a, 0x5a, sizeof a);
  attnforge_args_init(&a);
  EXPECT_EQ(a.q.data, nullptr);
  EXPECT_EQ(a.mask.kind, nullptr);
  EXPECT_EQ(a.mask.scalars[0], -1);
  EXPECT_EQ(a.mask.bias.data, nullptr);
  EXPECT_EQ(a.backend, ATTNFORGE_BACKEND_AUTO);
  EXPECT_EQ(a.scale, 0.0f);
  EXPECT_EQ(a.variant, nullptr);
  EXPECT_EQ(a.workspace, nullptr);
  EXPECT_EQ(a.cu_seqlens_q, nullptr);
}

}  // namespace
