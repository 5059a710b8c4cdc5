//===- ReftLoweringTest.cpp - the ReFT ops keep their values when lowered -===//
//
// peft.loreft, peft.nodireft, peft.householder_orthogonal and its gradient
// are evaluated in f64 on random inputs before and after peft-decompose and
// again after peft-lower-gemms and peft-outline-kernels: every output must
// agree to 1e-12 relative. Positions include -1 (none) and repeated rows.
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

constexpr int64_t kSeq = 5;

constexpr const char *kModule = R"mlir(
func.func @loreft(%h: tensor<2x5x6xf64>, %x: tensor<6x3xf64>, %base: tensor<6x6xf64>, %w: tensor<3x6xf64>, %b: tensor<3xf64>, %p: tensor<2x4xi64>) -> tensor<2x5x6xf64> {
  %r = peft.householder_orthogonal %x, %base : tensor<6x3xf64>, tensor<6x6xf64> -> tensor<6x3xf64>
  %y = peft.loreft %h, %r, %w, %b, %p : tensor<2x5x6xf64>, tensor<6x3xf64>, tensor<3x6xf64>, tensor<3xf64>, tensor<2x4xi64> -> tensor<2x5x6xf64>
  return %y : tensor<2x5x6xf64>
}
func.func @nodireft(%h: tensor<2x5x6xf64>, %w: tensor<2x6xf64>, %b: tensor<2xf64>, %proj: tensor<2x6xf64>, %p: tensor<2x4xi64>) -> tensor<2x5x6xf64> {
  %y = peft.nodireft %h, %w, %b, %proj, %p : tensor<2x5x6xf64>, tensor<2x6xf64>, tensor<2xf64>, tensor<2x6xf64>, tensor<2x4xi64> -> tensor<2x5x6xf64>
  return %y : tensor<2x5x6xf64>
}
func.func @householder_grad(%x: tensor<6x3xf64>, %base: tensor<6x6xf64>, %dq: tensor<6x3xf64>) -> tensor<6x3xf64> {
  %dx = peft.householder_orthogonal_grad %x, %base, %dq : tensor<6x3xf64>, tensor<6x6xf64> -> tensor<6x3xf64>
  return %dx : tensor<6x3xf64>
}
func.func @householder_square(%x: tensor<4x4xf64>, %base: tensor<4x4xf64>, %dq: tensor<4x4xf64>) -> (tensor<4x4xf64>, tensor<4x4xf64>) {
  %q = peft.householder_orthogonal %x, %base : tensor<4x4xf64>, tensor<4x4xf64> -> tensor<4x4xf64>
  %dx = peft.householder_orthogonal_grad %x, %base, %dq : tensor<4x4xf64>, tensor<4x4xf64> -> tensor<4x4xf64>
  return %q, %dx : tensor<4x4xf64>, tensor<4x4xf64>
}
)mlir";

/// Floats in [-1, 1) (square matrices' diagonals in [-3, 3), so column signs
/// of both signs and 0 occur); positions in [-1, T).
std::vector<Tensor> randomInputs(func::FuncOp fn, std::mt19937_64 &rng) {
  std::vector<Tensor> inputs;
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (Type t : fn.getArgumentTypes()) {
    auto type = cast<RankedTensorType>(t);
    bool isFloat = isa<FloatType>(type.getElementType());
    Tensor in(isFloat ? DType::F64 : DType::I64, toShape(type));
    for (int64_t i = 0; i < in.numel(); ++i) {
      if (isFloat)
        in.setDouble(i, uniform(rng));
      else
        in.setInt(i, int64_t(rng() % (kSeq + 1)) - 1);
    }
    if (isFloat && type.getRank() == 2)
      for (int64_t j = 0; j < std::min(type.getDimSize(0), type.getDimSize(1));
           ++j)
        in.setDouble(j * type.getDimSize(1) + j, 3 * uniform(rng));
    inputs.push_back(std::move(in));
  }
  return inputs;
}

class ReftLowering : public ::testing::Test {
protected:
  void SetUp() override {
    registry.insert<func::FuncDialect, nn::NNDialect, pir::PeftDialect,
                    kern::KernDialect>();
    ctx = std::make_unique<MLIRContext>(registry);
    ctx->loadAllAvailableDialects();
    module = parseSourceString<ModuleOp>(kModule, ctx.get());
    ASSERT_TRUE(module);
  }

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
      double scale = 0;
      for (int64_t i = 0; i < a.numel(); ++i)
        scale = std::max(scale, std::abs(a.getDouble(i)));
      ASSERT_GT(scale, 0) << stage << " function " << f;
      for (int64_t i = 0; i < a.numel(); ++i)
        EXPECT_LE(std::abs(a.getDouble(i) - b.getDouble(i)), 1e-12 * scale)
            << stage << ": function " << f << " result " << r << " element "
            << i << ": " << a.getDouble(i) << " vs " << b.getDouble(i);
    }
  }
}

TEST_F(ReftLowering, DecomposeLowerAndOutlineKeepTheValues) {
  for (uint64_t seed : {1u, 2u, 3u, 4u}) {
    OwningOpRef<ModuleOp> m = module->clone();
    auto before = evaluate(*m, seed);
    PassManager pm(ctx.get());
    pm.addPass(createDecompose());
    ASSERT_TRUE(succeeded(pm.run(*m)));
    ASSERT_TRUE(succeeded(verify(*m)));
    int64_t left = 0, sweeps = 0;
    m->walk([&](Operation *op) {
      left += isa<pir::LoreftOp, pir::NodireftOp, pir::HouseholderOrthogonalOp,
                  pir::HouseholderOrthogonalGradOp>(op);
      sweeps += isa<pir::HouseholderSweepOp>(op);
    });
    EXPECT_EQ(left, 0);
    // One sweep per map (2), two per gradient (2).
    EXPECT_EQ(sweeps, 2 + 2 * 2);
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
    // Each map 1, loreft 2, nodireft 2, each gradient 5 (baseᵀ·dQ and the
    // four batched products over the reflectors).
    EXPECT_EQ(gemms, 2 * 1 + 2 + 2 + 2 * 5);
    expectSame(before, evaluate(*m, seed), "peft-lower-gemms");

    PassManager outline(ctx.get());
    outline.addPass(createOutlineKernels());
    ASSERT_TRUE(succeeded(outline.run(*m)));
    ASSERT_TRUE(succeeded(verify(*m)));
    expectSame(before, evaluate(*m, seed), "peft-outline-kernels");
  }
}

} // namespace
