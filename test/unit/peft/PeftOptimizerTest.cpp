// Optimizer updates, clipping and schedules against hand-computed values and
// the textbook formulas of the PyTorch / transformers documentation, and the
// evaluator's param overrides that carry a training step's assigns forward.
#include "PeftTestUtil.h"

#include <cmath>

namespace peft::test {
namespace {

class OptimizerKernels : public PeftEvalTest {};
class ParamAssign : public PeftEvalTest {};

constexpr const char *kAdamW = R"mlir(
    func.func @f(%p: tensor<1xf64>, %g: tensor<1xf64>, %m: tensor<1xf64>,
                 %v: tensor<1xf64>, %lr: tensor<f64>, %step: tensor<i64>)
        -> (tensor<1xf64>, tensor<1xf64>, tensor<1xf64>) {
      %0:3 = peft.adamw %p, %g, %m, %v, %lr, %step
          {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.01 : f64}
          : tensor<1xf64>, tensor<f64>, tensor<i64>
      return %0#0, %0#1, %0#2 : tensor<1xf64>, tensor<1xf64>, tensor<1xf64>
    })mlir";

// Step 1 from zero state: p = 1·(1 − 0.1·0.01) = 0.999, m = 0.05,
// v = 0.001·0.25; m̂ = 0.5, √v̂ = 0.5, so p − 0.1·0.5 / (0.5 + 1e-8).
TEST_F(OptimizerKernels, AdamWFirstStep) {
  parse(kAdamW);
  auto out = runOk({f64({1}, {1}), f64({1}, {0.5}), f64({1}, {0}),
                    f64({1}, {0}), f64({}, {0.1}), i64({}, {1})});
  ASSERT_EQ(out.size(), 3u);
  expectNear(out[0], {0.999 - 0.05 / (0.5 + 1e-8)}, 1e-15);
  expectNear(out[1], {0.05}, 1e-16);
  expectNear(out[2], {0.00025}, 1e-18);
}

// Without f64 promotion the update runs on f32 state and keeps f32 results.
TEST(OptimizerKernelsF32, AdamWKeepsTheParamDtype) {
  mlir::MLIRContext context;
  context.loadDialect<mlir::func::FuncDialect, peft::nn::NNDialect,
                      peft::pir::PeftDialect>();
  auto module = mlir::parseSourceString<mlir::ModuleOp>(R"mlir(
    func.func @f(%p: tensor<2xf32>, %g: tensor<2xf32>, %m: tensor<2xf32>,
                 %v: tensor<2xf32>, %lr: tensor<f32>, %step: tensor<i64>)
        -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) {
      %0:3 = peft.adamw %p, %g, %m, %v, %lr, %step
          {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.01 : f64}
          : tensor<2xf32>, tensor<f32>, tensor<i64>
      return %0#0, %0#1, %0#2 : tensor<2xf32>, tensor<2xf32>, tensor<2xf32>
    })mlir",
                                                        &context);
  ASSERT_TRUE(module);
  ref::Evaluator evaluator(*module);
  auto f32 = [](Shape shape, std::vector<double> values) {
    return f64(std::move(shape), values).castTo(DType::F32);
  };
  auto out =
      evaluator.run({f32({2}, {1, -1}), f32({2}, {0.5, 0.25}), f32({2}, {0, 0}),
                     f32({2}, {0, 0}), f32({}, {0.1}), i64({}, {1})});
  ASSERT_TRUE(mlir::succeeded(out));
  ASSERT_EQ(out->size(), 3u);
  for (const Tensor &t : *out)
    EXPECT_EQ(t.dtype(), DType::F32);
  // Step 1 moves every element by lr·sign(g) (up to eps), after decay.
  expectNear((*out)[0], {0.999 - 0.1, -0.999 - 0.1}, 1e-6);
  expectNear((*out)[1], {0.05, 0.025}, 1e-8);
}

TEST_F(OptimizerKernels, AdamWRejectsStepZero) {
  parse(kAdamW);
  auto out = run({f64({1}, {1}), f64({1}, {0.5}), f64({1}, {0}), f64({1}, {0}),
                  f64({}, {0.1}), i64({}, {0})});
  EXPECT_TRUE(mlir::failed(out));
  EXPECT_NE(errors.find("step must be >= 1"), std::string::npos) << errors;
}

constexpr const char *kSgd = R"mlir(
    func.func @plain(%p: tensor<1xf64>, %g: tensor<1xf64>, %buf: tensor<1xf64>,
                     %lr: tensor<f64>, %step: tensor<i64>) -> (tensor<1xf64>, tensor<1xf64>) {
      %0:2 = peft.sgd %p, %g, %buf, %lr, %step {momentum = 0.9 : f64, weight_decay = 0.1 : f64}
          : tensor<1xf64>, tensor<f64>, tensor<i64>
      return %0#0, %0#1 : tensor<1xf64>, tensor<1xf64>
    }
    func.func @nesterov(%p: tensor<1xf64>, %g: tensor<1xf64>, %buf: tensor<1xf64>,
                        %lr: tensor<f64>, %step: tensor<i64>) -> (tensor<1xf64>, tensor<1xf64>) {
      %0:2 = peft.sgd %p, %g, %buf, %lr, %step {momentum = 0.9 : f64, weight_decay = 0.1 : f64, nesterov = true}
          : tensor<1xf64>, tensor<f64>, tensor<i64>
      return %0#0, %0#1 : tensor<1xf64>, tensor<1xf64>
    }
    func.func @dampened(%p: tensor<1xf64>, %g: tensor<1xf64>, %buf: tensor<1xf64>,
                        %lr: tensor<f64>, %step: tensor<i64>) -> (tensor<1xf64>, tensor<1xf64>) {
      %0:2 = peft.sgd %p, %g, %buf, %lr, %step {momentum = 0.9 : f64, dampening = 0.5 : f64, weight_decay = 0.1 : f64}
          : tensor<1xf64>, tensor<f64>, tensor<i64>
      return %0#0, %0#1 : tensor<1xf64>, tensor<1xf64>
    }
    func.func @no_momentum(%p: tensor<1xf64>, %g: tensor<1xf64>, %buf: tensor<1xf64>,
                           %lr: tensor<f64>, %step: tensor<i64>) -> (tensor<1xf64>, tensor<1xf64>) {
      %0:2 = peft.sgd %p, %g, %buf, %lr, %step {weight_decay = 0.1 : f64}
          : tensor<1xf64>, tensor<f64>, tensor<i64>
      return %0#0, %0#1 : tensor<1xf64>, tensor<1xf64>
    })mlir";

// g = 0.5 + 0.1·p. Step 1 (p = 1): g = 0.6, buf = g, p = 1 − 0.1·0.6.
// Step 2 (p = 0.94, buf = 0.6): g = 0.594, buf = 0.9·0.6 + g = 1.134.
TEST_F(OptimizerKernels, SgdMomentumFirstStepClonesTheGradient) {
  parse(kSgd);
  Tensor lr = f64({}, {0.1});
  // The incoming buffer is garbage on step 1: PyTorch has none yet.
  auto step1 =
      runOk({f64({1}, {1}), f64({1}, {0.5}), f64({1}, {7}), lr, i64({}, {1})},
            "plain");
  ASSERT_EQ(step1.size(), 2u);
  expectNear(step1[0], {0.94}, 1e-15);
  expectNear(step1[1], {0.6}, 1e-15);
  auto step2 =
      runOk({step1[0], f64({1}, {0.5}), step1[1], lr, i64({}, {2})}, "plain");
  ASSERT_EQ(step2.size(), 2u);
  expectNear(step2[1], {1.134}, 1e-15);
  expectNear(step2[0], {0.94 - 0.1134}, 1e-15);
}

TEST_F(OptimizerKernels, SgdNesterovDampeningAndNoMomentum) {
  parse(kSgd);
  Tensor lr = f64({}, {0.1});
  // Nesterov step 1: buf = 0.6, g = 0.6 + 0.9·0.6 = 1.14.
  auto nesterov =
      runOk({f64({1}, {1}), f64({1}, {0.5}), f64({1}, {0}), lr, i64({}, {1})},
            "nesterov");
  ASSERT_EQ(nesterov.size(), 2u);
  expectNear(nesterov[0], {1 - 0.114}, 1e-15);
  expectNear(nesterov[1], {0.6}, 1e-15);
  // Dampening on step 2: buf = 0.9·0.6 + 0.5·0.594.
  auto dampened = runOk(
      {f64({1}, {0.94}), f64({1}, {0.5}), f64({1}, {0.6}), lr, i64({}, {2})},
      "dampened");
  ASSERT_EQ(dampened.size(), 2u);
  expectNear(dampened[1], {0.837}, 1e-15);
  expectNear(dampened[0], {0.94 - 0.0837}, 1e-15);
  // No momentum: plain descent, the buffer passes through untouched.
  auto plain =
      runOk({f64({1}, {1}), f64({1}, {0.5}), f64({1}, {7}), lr, i64({}, {3})},
            "no_momentum");
  ASSERT_EQ(plain.size(), 2u);
  expectNear(plain[0], {0.94}, 1e-15);
  expectNear(plain[1], {7});
}

// ‖[3, 4]‖ = 5 and ‖[12]‖ = 12 stack to a global norm of 13.
TEST_F(OptimizerKernels, ClipGradNormScalesByTheGlobalNorm) {
  parse(R"mlir(
    func.func @clip(%a: tensor<2xf64>, %b: tensor<1x1xf64>)
        -> (tensor<2xf64>, tensor<1x1xf64>, tensor<f64>) {
      %0:3 = peft.clip_grad_norm %a, %b {max_norm = 1.0 : f64} : tensor<2xf64>, tensor<1x1xf64>
      return %0#0, %0#1, %0#2 : tensor<2xf64>, tensor<1x1xf64>, tensor<f64>
    }
    func.func @loose(%a: tensor<2xf64>, %b: tensor<1x1xf64>)
        -> (tensor<2xf64>, tensor<1x1xf64>, tensor<f64>) {
      %0:3 = peft.clip_grad_norm %a, %b {max_norm = 100.0 : f64} : tensor<2xf64>, tensor<1x1xf64>
      return %0#0, %0#1, %0#2 : tensor<2xf64>, tensor<1x1xf64>, tensor<f64>
    })mlir");
  Tensor a = f64({2}, {3, 4}), b = f64({1, 1}, {12});
  auto clipped = runOk({a, b}, "clip");
  ASSERT_EQ(clipped.size(), 3u);
  double coef = 1.0 / (13 + 1e-6);
  expectNear(clipped[0], {3 * coef, 4 * coef}, 1e-15);
  expectNear(clipped[1], {12 * coef}, 1e-15);
  expectNear(clipped[2], {13});
  auto loose = runOk({a, b}, "loose");
  ASSERT_EQ(loose.size(), 3u);
  expectNear(loose[0], {3, 4}, 0);
  expectNear(loose[1], {12}, 0);
  expectNear(loose[2], {13});
}

TEST_F(OptimizerKernels, SchedulesFollowTransformersLambdas) {
  parse(R"mlir(
    func.func @f(%step: tensor<i64>) -> (tensor<f64>, tensor<f64>, tensor<f64>) {
      %0 = peft.lr_schedule %step {kind = "constant", base_lr = 2.0 : f64, warmup_steps = 2 : i64}
          : tensor<i64> -> tensor<f64>
      %1 = peft.lr_schedule %step {kind = "linear", base_lr = 2.0 : f64, warmup_steps = 2 : i64, total_steps = 10 : i64}
          : tensor<i64> -> tensor<f64>
      %2 = peft.lr_schedule %step {kind = "cosine", base_lr = 2.0 : f64, warmup_steps = 2 : i64, total_steps = 10 : i64}
          : tensor<i64> -> tensor<f64>
      return %0, %1, %2 : tensor<f64>, tensor<f64>, tensor<f64>
    })mlir");
  // Optimizer step s runs with λ(s − 1). Rows: step, constant, linear, cosine.
  struct Row {
    int64_t step;
    double constant, linear, cosine;
  } rows[] = {
      {1, 0, 0, 0},                                       // warmup: 0 / 2
      {2, 1, 1, 1},                                       // warmup: 1 / 2
      {3, 2, 2, 2},                                       // progress 0
      {5, 2, 2 * 6.0 / 8, 1 + std::cos(M_PI * 2 / 8)},    // k = 4: 2 of 8 done
      {7, 2, 1, 1},                                       // k = 6: half way
      {11, 2, 0, 0},                                      // k = 10: the end
      {12, 2, 0, 2 * 0.5 * (1 + std::cos(M_PI * 9 / 8))}, // past the end
  };
  for (const Row &row : rows) {
    auto out = runOk({i64({}, {row.step})});
    ASSERT_EQ(out.size(), 3u);
    SCOPED_TRACE("step " + std::to_string(row.step));
    expectNear(out[0], {row.constant}, 1e-15);
    expectNear(out[1], {row.linear}, 1e-15);
    expectNear(out[2], {row.cosine}, 1e-15);
  }
}

// Three AdamW steps through peft.assign, checked against the textbook form
// from the torch.optim.AdamW documentation (bias-corrected m̂, v̂) with a
// linear warmup schedule: the evaluator carries params and state forward.
TEST_F(ParamAssign, AdamWTrainingLoopMatchesTheTextbookAlgorithm) {
  parse(R"mlir(
    peft.param @p : tensor<3xf64> trainable value dense<[1.0, -2.0, 0.5]> : tensor<3xf64>
    peft.param @m : tensor<3xf64> frozen value dense<0.0> : tensor<3xf64>
    peft.param @v : tensor<3xf64> frozen value dense<0.0> : tensor<3xf64>
    peft.param @step : tensor<i64> frozen value dense<1> : tensor<i64>
    func.func @train_step(%g: tensor<3xf64>) -> tensor<f64> {
      %p = peft.use @p : tensor<3xf64>
      %m = peft.use @m : tensor<3xf64>
      %v = peft.use @v : tensor<3xf64>
      %step = peft.use @step : tensor<i64>
      %lr = peft.lr_schedule %step {kind = "linear", base_lr = 0.1 : f64, warmup_steps = 1 : i64, total_steps = 4 : i64}
          : tensor<i64> -> tensor<f64>
      %new:3 = peft.adamw %p, %g, %m, %v, %lr, %step
          {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-6 : f64, weight_decay = 0.1 : f64}
          : tensor<3xf64>, tensor<f64>, tensor<i64>
      %one = nn.constant dense<1> : tensor<i64>
      %next = nn.add %step, %one : tensor<i64>, tensor<i64> -> tensor<i64>
      peft.assign @p, %new#0 : tensor<3xf64>
      peft.assign @m, %new#1 : tensor<3xf64>
      peft.assign @v, %new#2 : tensor<3xf64>
      peft.assign @step, %next : tensor<i64>
      return %lr : tensor<f64>
    })mlir");
  const double beta1 = 0.9, beta2 = 0.95, eps = 1e-6, wd = 0.1;
  std::vector<double> p = {1.0, -2.0, 0.5}, m(3, 0.0), v(3, 0.0);
  const std::vector<std::vector<double>> grads = {
      {0.3, -1.2, 2.0}, {-0.7, 0.4, 1.1}, {0.05, 0.9, -3.0}};
  for (int t = 1; t <= 3; ++t) {
    double lr = 0.1 * (t == 1 ? 0.0 : (4.0 - (t - 1)) / 3.0);
    auto out = runOk({f64({3}, grads[t - 1])}, "train_step");
    ASSERT_EQ(out.size(), 1u);
    expectNear(out[0], {lr}, 1e-16);
    for (int i = 0; i < 3; ++i) {
      double g = grads[t - 1][i];
      p[i] -= lr * wd * p[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      double mHat = m[i] / (1 - std::pow(beta1, t));
      double vHat = v[i] / (1 - std::pow(beta2, t));
      p[i] -= lr * mHat / (std::sqrt(vHat) + eps);
    }
  }
  const Tensor *param = evaluator().paramOverride("p");
  ASSERT_NE(param, nullptr);
  expectNear(*param, p, 1e-14);
  ASSERT_NE(evaluator().paramOverride("m"), nullptr);
  expectNear(*evaluator().paramOverride("m"), m, 1e-15);
  expectNear(*evaluator().paramOverride("v"), v, 1e-15);
  ASSERT_NE(evaluator().paramOverride("step"), nullptr);
  EXPECT_EQ(evaluator().paramOverride("step")->getInt(0), 4);
}

constexpr const char *kAccumulate = R"mlir(
    peft.param @w : tensor<2xf64> trainable value dense<[1.0, 2.0]> : tensor<2xf64>
    func.func @step(%g: tensor<2xf64>) -> tensor<2xf64> {
      %w = peft.use @w : tensor<2xf64>
      %new = nn.add %w, %g : tensor<2xf64>, tensor<2xf64> -> tensor<2xf64>
      peft.assign @w, %new : tensor<2xf64>
      %again = peft.use @w : tensor<2xf64>
      return %again : tensor<2xf64>
    }
    func.func @twice(%g: tensor<2xf64>) -> tensor<2xf64> {
      %w = peft.use @w : tensor<2xf64>
      peft.assign @w, %g : tensor<2xf64>
      peft.assign @w, %w : tensor<2xf64>
      return %w : tensor<2xf64>
    })mlir";

// Uses read the value from before the call, even after an assign.
TEST_F(ParamAssign, AssignsTakeEffectWhenTheCallReturns) {
  parse(kAccumulate);
  EXPECT_EQ(evaluator().paramOverride("w"), nullptr);
  auto first = runOk({f64({2}, {10, 20})}, "step");
  ASSERT_EQ(first.size(), 1u);
  expectNear(first[0], {1, 2}, 0);
  auto second = runOk({f64({2}, {10, 20})}, "step");
  ASSERT_EQ(second.size(), 1u);
  expectNear(second[0], {11, 22}, 0);
  auto value = evaluator().paramValue("w");
  ASSERT_TRUE(mlir::succeeded(value)) << errors;
  expectNear(*value, {21, 42}, 0);
}

TEST_F(ParamAssign, SetParamAndClearOverrides) {
  parse(kAccumulate);
  ASSERT_TRUE(mlir::succeeded(evaluator().setParam("w", f64({2}, {5, 6}))));
  auto out = runOk({f64({2}, {1, 1})}, "step");
  ASSERT_EQ(out.size(), 1u);
  expectNear(out[0], {5, 6}, 0);
  expectNear(*evaluator().paramOverride("w"), {6, 7}, 0);
  evaluator().clearParamOverrides();
  EXPECT_EQ(evaluator().paramOverride("w"), nullptr);
  auto fresh = runOk({f64({2}, {1, 1})}, "step");
  ASSERT_EQ(fresh.size(), 1u);
  expectNear(fresh[0], {1, 2}, 0);
}

TEST_F(ParamAssign, SetParamCopiesItsArgument) {
  parse(kAccumulate);
  Tensor value = f64({2}, {5, 6});
  ASSERT_TRUE(mlir::succeeded(evaluator().setParam("w", value)));
  value.setDouble(0, -1);
  expectNear(*evaluator().paramOverride("w"), {5, 6}, 0);
}

TEST_F(ParamAssign, SetParamRejectsWhatDoesNotFit) {
  parse(kAccumulate);
  EXPECT_TRUE(mlir::failed(evaluator().setParam("w", f64({3}, {1, 2, 3}))));
  EXPECT_NE(errors.find("does not fit param @w"), std::string::npos) << errors;
  EXPECT_TRUE(mlir::failed(evaluator().setParam("nope", f64({2}, {1, 2}))));
  EXPECT_NE(errors.find("no peft.param @nope"), std::string::npos) << errors;
  EXPECT_TRUE(mlir::failed(evaluator().setParam("w", i64({2}, {1, 2}))));
}

TEST_F(ParamAssign, AssigningTwiceInOneCallIsAnError) {
  parse(kAccumulate);
  auto out = run({f64({2}, {0, 0})}, "twice");
  EXPECT_TRUE(mlir::failed(out));
  EXPECT_NE(errors.find("param @w is assigned twice in one call"),
            std::string::npos)
      << errors;
  // A failed call commits nothing.
  EXPECT_EQ(evaluator().paramOverride("w"), nullptr);
}

} // namespace
} // namespace peft::test
