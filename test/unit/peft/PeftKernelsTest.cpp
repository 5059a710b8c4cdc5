// Reference kernels of the peft adapter and loss ops against values worked
// out by hand (f64 throughout).
#include "PeftTestUtil.h"

#include <cmath>

namespace peft::test {
namespace {

class AdapterKernels : public PeftEvalTest {};
class LossKernels : public PeftEvalTest {};

// x·W = [1, 2, 4]; (x·Aᵀ)·Bᵀ = 3·[1, 2, 0]; y = x·W + 0.5·[3, 6, 0].
TEST_F(AdapterKernels, LoraInOutAndOutInAgree) {
  parse(R"mlir(
    func.func @f(%x: tensor<2x1x2xf64>, %w: tensor<2x3xf64>, %wt: tensor<3x2xf64>,
                 %a: tensor<1x2xf64>, %b: tensor<3x1xf64>)
        -> (tensor<2x1x3xf64>, tensor<2x1x3xf64>) {
      %0 = peft.lora %x, %w, %a, %b {scale = 0.5 : f64, weight_layout = "in_out"}
          : tensor<2x1x2xf64>, tensor<2x3xf64>, tensor<1x2xf64>, tensor<3x1xf64> -> tensor<2x1x3xf64>
      %1 = peft.lora %x, %wt, %a, %b {scale = 0.5 : f64, weight_layout = "out_in"}
          : tensor<2x1x2xf64>, tensor<3x2xf64>, tensor<1x2xf64>, tensor<3x1xf64> -> tensor<2x1x3xf64>
      return %0, %1 : tensor<2x1x3xf64>, tensor<2x1x3xf64>
    })mlir");
  Tensor x = f64({2, 1, 2}, {1, 2, -1, 0});
  Tensor w = f64({2, 3}, {1, 0, 2, 0, 1, 1});
  Tensor wt = f64({3, 2}, {1, 0, 0, 1, 2, 1});
  Tensor a = f64({1, 2}, {1, 1});
  Tensor b = f64({3, 1}, {1, 2, 0});
  auto out = runOk({x, w, wt, a, b});
  ASSERT_EQ(out.size(), 2u);
  // Row 2: x = [-1, 0]: x·W = [-1, 0, -2], x·Aᵀ = -1, update 0.5·[-1, -2, 0].
  std::vector<double> expected = {2.5, 5, 4, -1.5, -1, -2};
  expectNear(out[0], expected);
  expectNear(out[1], expected);
}

// Only the low-rank path reads the adapter input (dropout applied).
TEST_F(AdapterKernels, LoraAdapterInputFeedsOnlyTheLowRankPath) {
  parse(R"mlir(
    func.func @f(%x: tensor<1x2xf64>, %d: tensor<1x2xf64>, %w: tensor<2x3xf64>,
                 %a: tensor<1x2xf64>, %b: tensor<3x1xf64>) -> tensor<1x3xf64> {
      %0 = peft.lora %x, %w, %a, %b adapter_input %d {scale = 0.5 : f64, weight_layout = "in_out"}
          : tensor<1x2xf64>, tensor<2x3xf64>, tensor<1x2xf64>, tensor<3x1xf64> -> tensor<1x3xf64>
      return %0 : tensor<1x3xf64>
    })mlir");
  auto out = runOk({f64({1, 2}, {1, 2}), f64({1, 2}, {0, 1}),
                    f64({2, 3}, {1, 0, 2, 0, 1, 1}), f64({1, 2}, {1, 1}),
                    f64({3, 1}, {1, 2, 0})});
  ASSERT_EQ(out.size(), 1u);
  expectNear(out[0], {1.5, 3, 4});
}

// W = [[3, 4], [0, 1]] ([out, in]), s·B·A = [[0, 0], [2, 0]]:
// ‖W + sBA‖ per output = [5, √5]; m = [10, √5] gives m/n = [2, 1].
// x = [1, 1]: x·Wᵀ = [7, 1], s·x·Aᵀ·Bᵀ = [0, 2]; y = (m/n)·(7 + 0, 1 + 2).
TEST_F(AdapterKernels, DoraMatchesHandComputedNorms) {
  parse(R"mlir(
    func.func @f(%x: tensor<1x2xf64>, %w: tensor<2x2xf64>, %wt: tensor<2x2xf64>,
                 %a: tensor<1x2xf64>, %b: tensor<2x1xf64>, %m: tensor<2xf64>)
        -> (tensor<1x2xf64>, tensor<1x2xf64>) {
      %0 = peft.dora %x, %w, %a, %b, %m {scale = 2.0 : f64, weight_layout = "out_in"}
          : tensor<1x2xf64>, tensor<2x2xf64>, tensor<1x2xf64>, tensor<2x1xf64>, tensor<2xf64> -> tensor<1x2xf64>
      %1 = peft.dora %x, %wt, %a, %b, %m {scale = 2.0 : f64, weight_layout = "in_out"}
          : tensor<1x2xf64>, tensor<2x2xf64>, tensor<1x2xf64>, tensor<2x1xf64>, tensor<2xf64> -> tensor<1x2xf64>
      return %0, %1 : tensor<1x2xf64>, tensor<1x2xf64>
    })mlir");
  Tensor x = f64({1, 2}, {1, 1});
  Tensor w = f64({2, 2}, {3, 4, 0, 1});
  Tensor wt = f64({2, 2}, {3, 0, 4, 1});
  Tensor a = f64({1, 2}, {1, 0});
  Tensor b = f64({2, 1}, {0, 1});
  Tensor m = f64({2}, {10, std::sqrt(5.0)});
  auto out = runOk({x, w, wt, a, b, m});
  ASSERT_EQ(out.size(), 2u);
  expectNear(out[0], {14, 3});
  expectNear(out[1], {14, 3});
}

// PEFT's dropout form: y = x·Wᵀ + (m/n − 1)·(x̃·Wᵀ) + (m/n)·s·x̃·Aᵀ·Bᵀ with
// x̃ = [2, 0]: x̃·Wᵀ = [6, 0], s·x̃·Aᵀ·Bᵀ = [0, 4]; y = [7 + 6, 1 + 4].
TEST_F(AdapterKernels, DoraAdapterInputUsesPeftDropoutForm) {
  parse(R"mlir(
    func.func @f(%x: tensor<1x2xf64>, %d: tensor<1x2xf64>, %w: tensor<2x2xf64>,
                 %a: tensor<1x2xf64>, %b: tensor<2x1xf64>, %m: tensor<2xf64>)
        -> tensor<1x2xf64> {
      %0 = peft.dora %x, %w, %a, %b, %m adapter_input %d {scale = 2.0 : f64, weight_layout = "out_in"}
          : tensor<1x2xf64>, tensor<2x2xf64>, tensor<1x2xf64>, tensor<2x1xf64>, tensor<2xf64> -> tensor<1x2xf64>
      return %0 : tensor<1x2xf64>
    })mlir");
  auto out = runOk({f64({1, 2}, {1, 1}), f64({1, 2}, {2, 0}),
                    f64({2, 2}, {3, 4, 0, 1}), f64({1, 2}, {1, 0}),
                    f64({2, 1}, {0, 1}), f64({2}, {10, std::sqrt(5.0)})});
  ASSERT_EQ(out.size(), 1u);
  expectNear(out[0], {13, 5});
}

// With B = 0 and m = ‖W‖ (PEFT's initialisation) DoRA is the base layer.
TEST_F(AdapterKernels, DoraAtInitialisationIsTheBaseLayer) {
  parse(R"mlir(
    func.func @f(%x: tensor<2x3xf64>, %w: tensor<2x3xf64>, %a: tensor<2x3xf64>,
                 %b: tensor<2x2xf64>, %m: tensor<2xf64>) -> tensor<2x2xf64> {
      %0 = peft.dora %x, %w, %a, %b, %m {scale = 4.0 : f64, weight_layout = "out_in"}
          : tensor<2x3xf64>, tensor<2x3xf64>, tensor<2x3xf64>, tensor<2x2xf64>, tensor<2xf64> -> tensor<2x2xf64>
      return %0 : tensor<2x2xf64>
    })mlir");
  auto out = runOk({f64({2, 3}, {1, -2, 0.5, 3, 0, -1}),
                    f64({2, 3}, {1, 2, 2, 0, 3, 4}),
                    f64({2, 3}, {0.3, -0.7, 1.1, 2, 0.1, -0.4}),
                    f64({2, 2}, {0, 0, 0, 0}), f64({2}, {3, 5})});
  ASSERT_EQ(out.size(), 1u);
  // ‖W‖ per output = [3, 5] = m. x·Wᵀ: [1 − 4 + 1, 0 − 6 + 2],
  // [3 + 0 − 2, 0 + 0 − 4].
  expectNear(out[0], {-2, -4, 1, -4});
}

TEST_F(AdapterKernels, Ia3ScalesTheLastAxis) {
  parse(R"mlir(
    func.func @f(%h: tensor<2x3xf64>, %l: tensor<3xf64>) -> tensor<2x3xf64> {
      %0 = peft.ia3 %h, %l : tensor<2x3xf64>, tensor<3xf64> -> tensor<2x3xf64>
      return %0 : tensor<2x3xf64>
    })mlir");
  auto out = runOk({f64({2, 3}, {1, 2, 3, 4, 5, 6}), f64({3}, {1, 0, -1})});
  ASSERT_EQ(out.size(), 1u);
  expectNear(out[0], {1, 0, -3, 4, 0, -6});
}

// Rows [0, 0] and [0, ln 3]: softmax [1/2, 1/2] and [1/4, 3/4].
constexpr const char *kCrossEntropy = R"mlir(
    func.func @f(%logits: tensor<1x3x2xf64>, %labels: tensor<1x3xi64>)
        -> (tensor<f64>, tensor<f64>) {
      %0 = peft.cross_entropy %logits, %labels : tensor<1x3x2xf64>, tensor<1x3xi64> -> tensor<f64>
      %1 = peft.cross_entropy %logits, %labels {shift = "causal"} : tensor<1x3x2xf64>, tensor<1x3xi64> -> tensor<f64>
      return %0, %1 : tensor<f64>, tensor<f64>
    })mlir";

TEST_F(LossKernels, CrossEntropyMeanOverNonIgnored) {
  parse(kCrossEntropy);
  Tensor logits = f64({1, 3, 2}, {0, 0, 0, std::log(3.0), 5, -5});
  // Labels [0, 1, -100]. Plain: logits[0] vs 0 (ln 2), logits[1] vs 1
  // (ln 4/3), position 2 ignored. Causal: logits[0] vs labels[1] = 1 (ln 2),
  // logits[1] vs labels[2] = -100 (ignored), logits[2] has no next label.
  auto out = runOk({logits, i64({1, 3}, {0, 1, -100})});
  ASSERT_EQ(out.size(), 2u);
  expectNear(out[0], {(std::log(2.0) + std::log(4.0 / 3.0)) / 2});
  expectNear(out[1], {std::log(2.0)});
}

TEST_F(LossKernels, CrossEntropyCausalShiftsLabelsLeft) {
  parse(kCrossEntropy);
  // Causal: logits[0] vs labels[1] = 0 (ln 2), logits[1] vs labels[2] = 1
  // (ln 4/3), logits[2] has no next label. Plain: labels[0] = -100 ignored,
  // logits[1] vs 0 (ln 4), logits[2] vs 1 (10 + ln(1 + e^-10)).
  Tensor logits = f64({1, 3, 2}, {0, 0, 0, std::log(3.0), 5, -5});
  auto out = runOk({logits, i64({1, 3}, {-100, 0, 1})});
  ASSERT_EQ(out.size(), 2u);
  expectNear(out[1], {(std::log(2.0) + std::log(4.0 / 3.0)) / 2});
  expectNear(out[0], {(std::log(4.0) + 10 + std::log1p(std::exp(-10.0))) / 2});
}

TEST_F(LossKernels, CrossEntropyIsStableForLargeLogits) {
  parse(R"mlir(
    func.func @f(%logits: tensor<2x2xf64>, %labels: tensor<2xi64>) -> tensor<f64> {
      %0 = peft.cross_entropy %logits, %labels {ignore_index = -1 : i64}
          : tensor<2x2xf64>, tensor<2xi64> -> tensor<f64>
      return %0 : tensor<f64>
    })mlir");
  auto out = runOk({f64({2, 2}, {1000, 1000, -1000, 0}), i64({2}, {1, 0})});
  ASSERT_EQ(out.size(), 1u);
  // ln 2 and 1000 + ln(1 + e^-1000).
  expectNear(out[0], {(std::log(2.0) + 1000) / 2}, 1e-12);
}

TEST_F(LossKernels, CrossEntropyAllIgnoredIsNaN) {
  parse(kCrossEntropy);
  auto out = runOk(
      {f64({1, 3, 2}, {0, 0, 0, 0, 0, 0}), i64({1, 3}, {-100, -100, -100})});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(std::isnan(out[0].getDouble(0)));
  EXPECT_TRUE(std::isnan(out[1].getDouble(0)));
}

TEST_F(LossKernels, CrossEntropyRejectsLabelOutsideVocabulary) {
  parse(kCrossEntropy);
  auto out = run({f64({1, 3, 2}, {0, 0, 0, 0, 0, 0}), i64({1, 3}, {0, 2, 1})});
  EXPECT_TRUE(mlir::failed(out));
  EXPECT_NE(errors.find("label 2 at position 1 is outside [0, 2)"),
            std::string::npos)
      << errors;
}

TEST_F(LossKernels, MseIsTheMeanSquaredDifference) {
  parse(R"mlir(
    func.func @f(%p: tensor<2x2xf64>, %t: tensor<2x2xf64>) -> tensor<f64> {
      %0 = peft.mse %p, %t : tensor<2x2xf64> -> tensor<f64>
      return %0 : tensor<f64>
    })mlir");
  auto out = runOk({f64({2, 2}, {1, 2, 3, 4}), f64({2, 2}, {0, 2, 5, 4})});
  ASSERT_EQ(out.size(), 1u);
  expectNear(out[0], {1.25});
}

// The f32 graph keeps f32 results when the evaluator does not promote.
TEST(PeftKernelsF32, LoraStoresTheResultType) {
  mlir::MLIRContext context;
  context.loadDialect<mlir::func::FuncDialect, peft::nn::NNDialect,
                      peft::pir::PeftDialect>();
  auto module = mlir::parseSourceString<mlir::ModuleOp>(R"mlir(
    func.func @f(%x: tensor<1x2xf32>, %w: tensor<2x1xf32>, %a: tensor<1x2xf32>,
                 %b: tensor<1x1xf32>) -> tensor<1x1xf32> {
      %0 = peft.lora %x, %w, %a, %b {scale = 0.1 : f64, weight_layout = "in_out"}
          : tensor<1x2xf32>, tensor<2x1xf32>, tensor<1x2xf32>, tensor<1x1xf32> -> tensor<1x1xf32>
      return %0 : tensor<1x1xf32>
    })mlir",
                                                        &context);
  ASSERT_TRUE(module);
  ref::Evaluator evaluator(*module);
  auto toF32 = [](Tensor t) { return t.castTo(DType::F32); };
  auto out =
      evaluator.run({toF32(f64({1, 2}, {1, 2})), toF32(f64({2, 1}, {3, 4})),
                     toF32(f64({1, 2}, {1, 1})), toF32(f64({1, 1}, {1}))});
  ASSERT_TRUE(mlir::succeeded(out));
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].dtype(), DType::F32);
  EXPECT_FLOAT_EQ((float)(*out)[0].getDouble(0), 11.3f);
}

} // namespace
} // namespace peft::test
