//===- DecomposeTest.cpp - lowering keeps the numerics --------------------===//
//
// Each function is evaluated in f64 on random inputs before and after
// peft-decompose, and again after peft-lower-gemms and peft-outline-kernels
// (kern.gemm and kern.launch on the reference evaluator): every output must
// agree to 1e-12 relative.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Evaluator.h"
#include "codegen/reference/TensorAttr.h"
#include "passes/Passes.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace mlir;
using namespace peft;

namespace {

// Adapters in both weight layouts, with and without adapter_input, the
// losses (causal and plain cross-entropy with ignored labels, MSE) and the
// GEMM patterns the lowering folds (transposes, bias, scale, accumulator,
// batched products).
constexpr const char *kModule = R"mlir(
func.func @lora_in_out(%x: tensor<2x3x6xf32>, %w: tensor<6x5xf32>, %a: tensor<2x6xf32>, %b: tensor<5x2xf32>) -> tensor<2x3x5xf32> {
  %y = peft.lora %x, %w, %a, %b {scale = 0.7 : f64, weight_layout = "in_out"} : tensor<2x3x6xf32>, tensor<6x5xf32>, tensor<2x6xf32>, tensor<5x2xf32> -> tensor<2x3x5xf32>
  return %y : tensor<2x3x5xf32>
}
func.func @lora_out_in(%x: tensor<4x6xf32>, %w: tensor<5x6xf32>, %a: tensor<3x6xf32>, %b: tensor<5x3xf32>, %xt: tensor<4x6xf32>) -> tensor<4x5xf32> {
  %y = peft.lora %x, %w, %a, %b adapter_input %xt {scale = 1.3 : f64, weight_layout = "out_in"} : tensor<4x6xf32>, tensor<5x6xf32>, tensor<3x6xf32>, tensor<5x3xf32> -> tensor<4x5xf32>
  return %y : tensor<4x5xf32>
}
func.func @dora_out_in(%x: tensor<2x4x6xf32>, %w: tensor<5x6xf32>, %a: tensor<2x6xf32>, %b: tensor<5x2xf32>, %m: tensor<5xf32>) -> tensor<2x4x5xf32> {
  %y = peft.dora %x, %w, %a, %b, %m {scale = 2.0 : f64, weight_layout = "out_in"} : tensor<2x4x6xf32>, tensor<5x6xf32>, tensor<2x6xf32>, tensor<5x2xf32>, tensor<5xf32> -> tensor<2x4x5xf32>
  return %y : tensor<2x4x5xf32>
}
func.func @dora_in_out(%x: tensor<4x6xf32>, %w: tensor<6x5xf32>, %a: tensor<2x6xf32>, %b: tensor<5x2xf32>, %m: tensor<5xf32>, %xt: tensor<4x6xf32>) -> tensor<4x5xf32> {
  %y = peft.dora %x, %w, %a, %b, %m adapter_input %xt {scale = 0.3 : f64, weight_layout = "in_out"} : tensor<4x6xf32>, tensor<6x5xf32>, tensor<2x6xf32>, tensor<5x2xf32>, tensor<5xf32> -> tensor<4x5xf32>
  return %y : tensor<4x5xf32>
}
func.func @ia3_mse(%h: tensor<3x4xf32>, %l: tensor<4xf32>, %t: tensor<3x4xf32>) -> tensor<f32> {
  %s = peft.ia3 %h, %l : tensor<3x4xf32>, tensor<4xf32> -> tensor<3x4xf32>
  %loss = peft.mse %s, %t : tensor<3x4xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
func.func @ce_causal(%logits: tensor<2x5x7xf32>, %labels: tensor<2x5xi64>) -> tensor<f32> {
  %loss = peft.cross_entropy %logits, %labels {shift = "causal", ignore_index = -100 : i64} : tensor<2x5x7xf32>, tensor<2x5xi64> -> tensor<f32>
  return %loss : tensor<f32>
}
func.func @ce_plain(%logits: tensor<6x7xf32>, %labels: tensor<6xi64>) -> tensor<f32> {
  %loss = peft.cross_entropy %logits, %labels {ignore_index = 3 : i64} : tensor<6x7xf32>, tensor<6xi64> -> tensor<f32>
  return %loss : tensor<f32>
}
func.func @gemms(%x: tensor<2x3x6xf32>, %w: tensor<5x6xf32>, %bias: tensor<5xf32>, %q: tensor<2x2x3x4xf32>, %k: tensor<2x2x3x4xf32>) -> (tensor<2x3x5xf32>, tensor<2x2x3x3xf32>, tensor<2x3x5xf32>) {
  %wt = nn.transpose %w perm [1, 0] : tensor<5x6xf32> -> tensor<6x5xf32>
  %y = nn.matmul %x, %wt : tensor<2x3x6xf32>, tensor<6x5xf32> -> tensor<2x3x5xf32>
  %z = nn.add %y, %bias : tensor<2x3x5xf32>, tensor<5xf32> -> tensor<2x3x5xf32>
  %g = nn.gelu %z {approximate = "none"} : tensor<2x3x5xf32>
  %kt = nn.transpose %k perm [0, 1, 3, 2] : tensor<2x2x3x4xf32> -> tensor<2x2x4x3xf32>
  %s = nn.matmul %q, %kt : tensor<2x2x3x4xf32>, tensor<2x2x4x3xf32> -> tensor<2x2x3x3xf32>
  %p = nn.softmax %s axis 3 : tensor<2x2x3x3xf32>
  %e = nn.exp %g : tensor<2x3x5xf32>
  %r = nn.reduce_sum %e axes [2] keepdims : tensor<2x3x5xf32> -> tensor<2x3x1xf32>
  %n = nn.div %e, %r : tensor<2x3x5xf32>, tensor<2x3x1xf32> -> tensor<2x3x5xf32>
  %o = nn.mul %n, %g : tensor<2x3x5xf32>, tensor<2x3x5xf32> -> tensor<2x3x5xf32>
  return %g, %p, %o : tensor<2x3x5xf32>, tensor<2x2x3x3xf32>, tensor<2x3x5xf32>
}
)mlir";

/// Random inputs for `fn`: floats in [-1, 1); labels in [0, V) with a few
/// set to the function's ignore index (which the value range includes).
std::vector<Tensor> randomInputs(func::FuncOp fn, std::mt19937_64 &rng) {
  std::vector<Tensor> inputs;
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (Type t : fn.getArgumentTypes()) {
    auto type = cast<RankedTensorType>(t);
    Tensor in(isa<FloatType>(type.getElementType()) ? DType::F64 : DType::I64,
              toShape(type));
    for (int64_t i = 0; i < in.numel(); ++i) {
      if (in.dtype() == DType::F64) {
        in.setDouble(i, uniform(rng));
      } else {
        int64_t label = rng() % 7;
        if (rng() % 4 == 0)
          label = fn.getSymName() == "ce_plain" ? 3 : -100;
        in.setInt(i, label);
      }
    }
    inputs.push_back(std::move(in));
  }
  return inputs;
}

class LoweringNumerics : public ::testing::Test {
protected:
  void SetUp() override {
    registry.insert<func::FuncDialect, nn::NNDialect, pir::PeftDialect,
                    kern::KernDialect>();
    ctx = std::make_unique<MLIRContext>(registry);
    ctx->loadAllAvailableDialects();
    module = parseSourceString<ModuleOp>(kModule, ctx.get());
    ASSERT_TRUE(module);
  }

  /// Every function's outputs on the same inputs.
  std::vector<std::vector<Tensor>> evaluate(ModuleOp m, uint64_t seed) {
    std::vector<std::vector<Tensor>> outputs;
    ref::Evaluator eval(m, {/*promoteToF64=*/true});
    std::mt19937_64 rng(seed);
    for (auto fn : m.getOps<func::FuncOp>()) {
      if (fn->hasAttr(kern::attr::kKernel))
        continue;
      auto out = eval.run(randomInputs(fn, rng), fn.getSymName());
      EXPECT_TRUE(succeeded(out)) << fn.getSymName().str();
      outputs.push_back(succeeded(out) ? *out : std::vector<Tensor>{});
    }
    return outputs;
  }

  DialectRegistry registry;
  std::unique_ptr<MLIRContext> ctx;
  OwningOpRef<ModuleOp> module;
};

void expectSame(const std::vector<std::vector<Tensor>> &want,
                const std::vector<std::vector<Tensor>> &got,
                const char *stage) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t f = 0; f < want.size(); ++f) {
    ASSERT_EQ(want[f].size(), got[f].size()) << stage << " function " << f;
    for (size_t r = 0; r < want[f].size(); ++r) {
      const Tensor &a = want[f][r], &b = got[f][r];
      ASSERT_EQ(a.shape(), b.shape());
      for (int64_t i = 0; i < a.numel(); ++i) {
        double x = a.getDouble(i), y = b.getDouble(i);
        ASSERT_TRUE(std::isfinite(x)) << stage << " function " << f;
        EXPECT_LE(std::abs(x - y), 1e-12 * std::max(1.0, std::abs(x)))
            << stage << ": function " << f << " result " << r << " element "
            << i << ": " << x << " vs " << y;
      }
    }
  }
}

TEST_F(LoweringNumerics, DecomposeLowerAndOutlineKeepTheValues) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    OwningOpRef<ModuleOp> m = module->clone();
    auto before = evaluate(*m, seed);
    PassManager pm(ctx.get());
    pm.addPass(createDecompose());
    ASSERT_TRUE(succeeded(pm.run(*m)));
    ASSERT_TRUE(succeeded(verify(*m)));
    bool leftPeft = false;
    m->walk([&](Operation *op) {
      leftPeft |= isa<pir::LoraOp, pir::DoraOp, pir::Ia3Op, pir::MseOp,
                      pir::CrossEntropyOp>(op);
    });
    EXPECT_FALSE(leftPeft);
    expectSame(before, evaluate(*m, seed), "peft-decompose");

    PassManager lower(ctx.get());
    lower.addPass(createLowerGemms());
    ASSERT_TRUE(succeeded(lower.run(*m)));
    ASSERT_TRUE(succeeded(verify(*m)));
    int64_t gemms = 0, matmuls = 0;
    m->walk([&](Operation *op) {
      gemms += isa<kern::GemmOp>(op);
      matmuls += isa<nn::MatMulOp>(op);
    });
    EXPECT_EQ(matmuls, 0);
    EXPECT_GT(gemms, 10);
    expectSame(before, evaluate(*m, seed), "peft-lower-gemms");

    PassManager outline(ctx.get());
    outline.addPass(createOutlineKernels());
    ASSERT_TRUE(succeeded(outline.run(*m)));
    ASSERT_TRUE(succeeded(verify(*m)));
    expectSame(before, evaluate(*m, seed), "peft-outline-kernels");
  }
}

} // namespace
