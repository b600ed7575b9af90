// The C++ API (attention.hpp) over the C API: Tensor views, Mask factories, Status carrying the
// library's message, backend choice. No GPU needed: fake device pointers are never dereferenced
// because every call here stops at validation or selection.
#include <gtest/gtest.h>

#include "attnforge/attention.hpp"

namespace {

void* fake(uintptr_t i) { return reinterpret_cast<void*>(0x100000 * i); }

TEST(CppApi, TensorViews) {
  attnforge::Tensor t(fake(1), ATTNFORGE_BF16, {2, 3, 4, 5});
  EXPECT_TRUE(t.present());
  EXPECT_EQ(t.c().rank, 4);
  EXPECT_EQ(t.c().strides[0], 60);
  EXPECT_EQ(t.c().strides[1], 20);
  EXPECT_EQ(t.c().strides[2], 5);
  EXPECT_EQ(t.c().strides[3], 1);
  t.strides({180, 60, 15, 1});  // e.g. a slice of a packed qkv
  EXPECT_EQ(t.c().strides[2], 15);
  EXPECT_FALSE(attnforge::Tensor().present());
}

TEST(CppApi, MaskFactories) {
  EXPECT_EQ(attnforge::Mask::none().kind, "none");
  EXPECT_EQ(attnforge::Mask::causal().kind, "causal");
  const auto w = attnforge::Mask::window(128, 0);
  EXPECT_EQ(w.kind, "window");
  EXPECT_EQ(w.scalars[0], 128);
  EXPECT_EQ(w.scalars[1], 0);
  EXPECT_EQ(w.scalars[2], -1);
  const auto b = attnforge::Mask::bias_tensor(attnforge::Tensor(fake(9), ATTNFORGE_BOOL, {1, 1, 4, 4}));
  EXPECT_EQ(b.kind, "bias");
  EXPECT_TRUE(b.bias.present());
  EXPECT_EQ(attnforge::Mask::custom("prefix_lm", {16}).scalars[0], 16);
}

struct CppApiCall : ::testing::Test {
  attnforge::Tensor q{fake(1), ATTNFORGE_F16, {1, 64, 4, 128}};
  attnforge::Tensor k{fake(2), ATTNFORGE_F16, {1, 64, 4, 128}};
  attnforge::Tensor v{fake(3), ATTNFORGE_F16, {1, 64, 4, 128}};
  attnforge::Tensor o{fake(4), ATTNFORGE_F16, {1, 64, 4, 128}};
  attnforge::Tensor lse{fake(5), ATTNFORGE_F32, {1, 4, 64}};
};

TEST_F(CppApiCall, ForwardReportsValidationErrors) {
  attnforge::Tensor bad_k(fake(2), ATTNFORGE_BF16, {1, 64, 4, 128});
  const attnforge::Status s = attnforge::forward(q, bad_k, v, o);
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(bool(s));
  EXPECT_EQ(s.code, ATTNFORGE_INVALID_ARGUMENT);
  EXPECT_STREQ(s.name(), "ATTNFORGE_INVALID_ARGUMENT");
  EXPECT_EQ(s.message, "expected q and k to have the same dtype, got f16 and bf16");
}

TEST_F(CppApiCall, BackwardReportsMissingGradient) {
  attnforge::Tensor dq(fake(6), ATTNFORGE_F16, {1, 64, 4, 128});
  const attnforge::Status s = attnforge::backward(q, k, v, o, lse, attnforge::Tensor(), dq, k, v);
  EXPECT_EQ(s.code, ATTNFORGE_INVALID_ARGUMENT);
  EXPECT_EQ(s.message, "expected d_o to be a device pointer (the output gradient), got d_o.data = NULL");
}

TEST_F(CppApiCall, OptionsReachTheLibrary) {
  attnforge::Options opt;
  opt.mask = attnforge::Mask::custom("sideways");
  EXPECT_EQ(attnforge::forward(q, k, v, o, opt).message.rfind("unknown mask kind 'sideways'", 0), 0u);
  opt.mask = attnforge::Mask::window(int64_t(1) << 33, 0);
  EXPECT_EQ(attnforge::forward(q, k, v, o, opt).message,
            "expected mask.scalars[0] of mask kind 'window' to fit in int32, got 8589934592");
  opt = {};
  opt.varlen.cu_seqlens_q = static_cast<const int32_t*>(fake(7));
  EXPECT_EQ(attnforge::forward(q, k, v, o, opt).message,
            "expected cu_seqlens_q and cu_seqlens_k to be both set or both NULL, got cu_seqlens_q set and "
            "cu_seqlens_k NULL");
  opt = {};
  opt.variant = "no_such_variant";
  EXPECT_EQ(attnforge::forward(q, k, v, o, opt).message.rfind("unknown variant 'no_such_variant'", 0), 0u);
}

bool built(const std::string& name) {
  for (int i = 0; i < attnforge_variant_count(); ++i)
    if (name == attnforge_variant_name(i)) return true;
  return false;
}

TEST_F(CppApiCall, ChooseBackend) {
  if (!built("unfused_fwd_f16_hdany_none_w4") || !built("unfused_bwd_f16_hdany_none_w4"))
    GTEST_SKIP() << "this build has no unfused f16 variants";
  attnforge::Options opt;
  opt.backend = ATTNFORGE_BACKEND_UNFUSED;
  const auto c = attnforge::choose_backend(q, k, v, o, opt);
  ASSERT_TRUE(c.status.ok()) << c.status.message;
  EXPECT_EQ(c.backend, ATTNFORGE_BACKEND_UNFUSED);
  EXPECT_EQ(c.variant, "unfused_fwd_f16_hdany_none_w4");
  EXPECT_NE(c.reason.find("unfused"), std::string::npos);
  // Weights from flash: a clear refusal.
  opt.backend = ATTNFORGE_BACKEND_FLASH;
  attnforge::Tensor p(fake(8), ATTNFORGE_F16, {1, 4, 64, 64});
  const auto f = attnforge::choose_backend(q, k, v, o, opt, p);
  EXPECT_EQ(f.status.code, ATTNFORGE_UNSUPPORTED);
  EXPECT_NE(f.status.message.find("flash cannot return the attention weights"), std::string::npos);
  EXPECT_EQ(f.reason, f.status.message);
  const auto b = attnforge::choose_backend_backward(q, k, v, o, lse, o, q, k, v,
                                                    attnforge::Options{.backend = ATTNFORGE_BACKEND_UNFUSED});
  ASSERT_TRUE(b.status.ok()) << b.status.message;
  EXPECT_EQ(b.variant, "unfused_bwd_f16_hdany_none_w4");
}

TEST(CppApi, VariantsAreListed) {
  ASSERT_GT(attnforge_variant_count(), 0);
  for (int i = 0; i < attnforge_variant_count(); ++i) ASSERT_NE(attnforge_variant_name(i), nullptr);
}

}  // namespace
