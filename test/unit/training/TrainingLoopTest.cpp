//===- TrainingLoopTest.cpp - training steps vs an independent loop -------===//
//
// A two-layer MLP (fc1 trainable with its bias, fc2 frozen, MSE loss) is
// trained for several optimizer steps by the IR that peft-differentiate and
// peft-optimizer build, run on the reference evaluator in f64. The same loop
// is written out here in plain C++ from the textbook definitions: a
// hand-derived backward, clip_grad_norm_, transformers' schedules,
// torch.optim's AdamW and SGD as their documentation states them, and
// gradient accumulation as the mean of the micro-batch gradients. Every
// step's loss, gradient norm and lr, and the final params, must agree to
// 1e-10 relative.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Evaluator.h"
#include "frontends/spec/PeftSpec.h"
#include "passes/AdapterInit.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace peft;

namespace {

constexpr double kPi = 3.14159265358979323846;

//===----------------------------------------------------------------------===//
// The loop in plain C++
//===----------------------------------------------------------------------===//

struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> v;
  Matrix() = default;
  Matrix(int64_t r, int64_t c) : rows(r), cols(c), v(r * c, 0.0) {}
  double &at(int64_t i, int64_t j) { return v[i * cols + j]; }
  double at(int64_t i, int64_t j) const { return v[i * cols + j]; }
};

/// Deterministic, varied values (no RNG, so the test reads the same
/// everywhere).
Matrix pattern(int64_t rows, int64_t cols, double seed, double amplitude) {
  Matrix m(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i)
    m.v[i] = amplitude * std::sin(seed + 1.7 * i + 0.3 * i * i);
  return m;
}

struct Mlp {
  Matrix w1 = pattern(4, 3, 0.5, 0.8);
  Matrix b1 = pattern(1, 3, 2.0, 0.3);
  Matrix w2 = pattern(3, 2, 4.0, 0.9);
};

/// The data of micro-batch `micro` of optimizer step `step` (1-based).
Matrix inputOf(int64_t step, int64_t micro) {
  return pattern(2, 4, 0.7 * step + 0.31 * micro, 1.0);
}
Matrix targetOf(int64_t step, int64_t micro) {
  return pattern(2, 2, 5.0 + 0.9 * step + 0.17 * micro, 0.5);
}

/// loss = mean((relu(x·W1 + b1)·W2 − t)²); fills d loss / d W1, d b1.
double lossAndGrads(const Mlp &m, const Matrix &x, const Matrix &t, Matrix &dw1,
                    Matrix &db1) {
  Matrix h(2, 3), a(2, 3), y(2, 2);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      double acc = m.b1.at(0, j);
      for (int64_t k = 0; k < 4; ++k)
        acc += x.at(i, k) * m.w1.at(k, j);
      h.at(i, j) = acc;
      a.at(i, j) = acc > 0 ? acc : 0;
    }
  double loss = 0;
  Matrix dy(2, 2);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 2; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < 3; ++k)
        acc += a.at(i, k) * m.w2.at(k, j);
      double d = acc - t.at(i, j);
      loss += d * d / 4;
      dy.at(i, j) = 2 * d / 4;
    }
  dw1 = Matrix(4, 3);
  db1 = Matrix(1, 3);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      double da = 0;
      for (int64_t k = 0; k < 2; ++k)
        da += dy.at(i, k) * m.w2.at(j, k);
      double dh = h.at(i, j) > 0 ? da : 0;
      db1.at(0, j) += dh;
      for (int64_t k = 0; k < 4; ++k)
        dw1.at(k, j) += x.at(i, k) * dh;
    }
  return loss;
}

struct Config {
  std::string name;
  std::string optimizer = "adamw";
  double lr = 0.05, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weightDecay = 0.1, momentum = 0, maxGradNorm = 0.5;
  bool nesterov = false;
  std::string schedule = "cosine";
  int64_t warmup = 2, totalSteps = 6, accumulation = 1, steps = 6;
  /// Settings from a `peft.spec` module attribute instead of pass options.
  bool viaSpec = false;
};

void PrintTo(const Config &c, std::ostream *os) { *os << c.name; }

/// transformers' schedule lambdas at k = step − 1.
double lrAt(const Config &c, int64_t step) {
  double k = step - 1, w = c.warmup, total = c.totalSteps;
  if (k < w)
    return c.lr * k / std::max(1.0, w);
  if (c.schedule == "constant")
    return c.lr;
  double progress = (k - w) / std::max(1.0, total - w);
  if (c.schedule == "linear")
    return c.lr * std::max(0.0, (total - k) / std::max(1.0, total - w));
  return c.lr * std::max(0.0, 0.5 * (1 + std::cos(kPi * 2 * 0.5 * progress)));
}

struct StepRecord {
  double loss, gradNorm, lr;
};

/// The run the IR must reproduce: records per step, final params in `m`.
std::vector<StepRecord> referenceRun(const Config &c, Mlp &m) {
  std::vector<StepRecord> records;
  Matrix expAvg[2] = {Matrix(4, 3), Matrix(1, 3)};
  Matrix expAvgSq[2] = {Matrix(4, 3), Matrix(1, 3)};
  Matrix buffer[2] = {Matrix(4, 3), Matrix(1, 3)};
  for (int64_t step = 1; step <= c.steps; ++step) {
    Matrix grads[2] = {Matrix(4, 3), Matrix(1, 3)};
    double loss = 0;
    for (int64_t micro = 0; micro < c.accumulation; ++micro) {
      Matrix dw1, db1;
      loss += lossAndGrads(m, inputOf(step, micro), targetOf(step, micro), dw1,
                           db1) /
              c.accumulation;
      for (size_t i = 0; i < dw1.v.size(); ++i)
        grads[0].v[i] += dw1.v[i] / c.accumulation;
      for (size_t i = 0; i < db1.v.size(); ++i)
        grads[1].v[i] += db1.v[i] / c.accumulation;
    }
    double sq = 0;
    for (const Matrix &g : grads)
      for (double x : g.v)
        sq += x * x;
    double norm = std::sqrt(sq);
    if (c.maxGradNorm > 0) {
      double coef = std::min(1.0, c.maxGradNorm / (norm + 1e-6));
      for (Matrix &g : grads)
        for (double &x : g.v)
          x *= coef;
    }
    double lr = lrAt(c, step);
    records.push_back({loss, norm, lr});
    Matrix *params[2] = {&m.w1, &m.b1};
    for (int p = 0; p < 2; ++p) {
      // fc1.bias is a bias: no weight decay (Trainer's no_decay).
      double wd = p == 0 ? c.weightDecay : 0.0;
      for (size_t i = 0; i < params[p]->v.size(); ++i) {
        double &w = params[p]->v[i], g = grads[p].v[i];
        if (c.optimizer == "adamw") {
          // Loshchilov & Hutter's decoupled decay, Adam's bias corrections.
          w -= lr * wd * w;
          double &mo = expAvg[p].v[i], &ve = expAvgSq[p].v[i];
          mo = c.beta1 * mo + (1 - c.beta1) * g;
          ve = c.beta2 * ve + (1 - c.beta2) * g * g;
          double mHat = mo / (1 - std::pow(c.beta1, step));
          double vHat = ve / (1 - std::pow(c.beta2, step));
          w -= lr * mHat / (std::sqrt(vHat) + c.eps);
        } else {
          g += wd * w;
          if (c.momentum != 0) {
            double &b = buffer[p].v[i];
            b = step == 1 ? g : c.momentum * b + g;
            g = c.nesterov ? g + c.momentum * b : b;
          }
          w -= lr * g;
        }
      }
    }
  }
  return records;
}

//===----------------------------------------------------------------------===//
// The same loop through the IR
//===----------------------------------------------------------------------===//

std::string denseOf(const Matrix &m, bool vector) {
  std::string text = "dense<[";
  char buf[40];
  for (int64_t i = 0; i < m.rows; ++i) {
    if (!vector)
      text += i ? ", [" : "[";
    for (int64_t j = 0; j < m.cols; ++j) {
      std::snprintf(buf, sizeof(buf), "%s%.17g", j ? ", " : "", m.at(i, j));
      text += buf;
    }
    if (!vector)
      text += "]";
  }
  std::string type = vector ? "tensor<" + std::to_string(m.cols) + "xf64>"
                            : "tensor<" + std::to_string(m.rows) + "x" +
                                  std::to_string(m.cols) + "xf64>";
  return text + "]> : " + type;
}

std::string mlpModule(const Mlp &m) {
  return R"(peft.param @"fc1.weight" : tensor<4x3xf64> trainable value )" +
         denseOf(m.w1, false) + R"(
peft.param @"fc1.bias" : tensor<3xf64> trainable value )" +
         denseOf(m.b1, true) + R"(
peft.param @"fc2.weight" : tensor<3x2xf64> frozen value )" +
         denseOf(m.w2, false) + R"(
func.func @loss(%x: tensor<2x4xf64> {nn.name = "x"}, %t: tensor<2x2xf64> {nn.name = "target"}) -> tensor<f64> {
  %w1 = peft.use @"fc1.weight" : tensor<4x3xf64>
  %b1 = peft.use @"fc1.bias" : tensor<3xf64>
  %w2 = peft.use @"fc2.weight" : tensor<3x2xf64>
  %h0 = nn.matmul %x, %w1 : tensor<2x4xf64>, tensor<4x3xf64> -> tensor<2x3xf64>
  %h = nn.add %h0, %b1 : tensor<2x3xf64>, tensor<3xf64> -> tensor<2x3xf64>
  %a = nn.relu %h : tensor<2x3xf64>
  %y = nn.matmul %a, %w2 : tensor<2x3xf64>, tensor<3x2xf64> -> tensor<2x2xf64>
  %l = peft.mse %y, %t : tensor<2x2xf64> -> tensor<f64>
  return %l : tensor<f64>
}
)";
}

Tensor tensorOf(const Matrix &m, Shape shape) {
  Tensor t(DType::F64, std::move(shape));
  for (size_t i = 0; i < m.v.size(); ++i)
    t.setDouble(i, m.v[i]);
  return t;
}

Tensor stepTensor(int64_t step) {
  Tensor t(DType::I64, {});
  t.setInt(0, step);
  return t;
}

/// The spec a YAML user would write for `c` (method FULL: the optimizer
/// pass reads only `training:`).
std::string specYaml(const Config &c) {
  char optimizer[512];
  if (c.optimizer == "adamw")
    std::snprintf(optimizer, sizeof(optimizer),
                  "{type: adamw, lr: %.17g, betas: [%.17g, %.17g], eps: "
                  "%.17g, weight_decay: %.17g}",
                  c.lr, c.beta1, c.beta2, c.eps, c.weightDecay);
  else
    std::snprintf(optimizer, sizeof(optimizer),
                  "{type: sgd, lr: %.17g, weight_decay: %.17g, momentum: "
                  "%.17g, nesterov: %s}",
                  c.lr, c.weightDecay, c.momentum,
                  c.nesterov ? "true" : "false");
  char text[1024];
  std::snprintf(text, sizeof(text),
                "peft_type: FULL\n"
                "training:\n"
                "  optimizer: %s\n"
                "  schedule: {type: %s, warmup_steps: %lld, total_steps: "
                "%lld}\n"
                "  max_grad_norm: %.17g\n"
                "  gradient_accumulation_steps: %lld\n",
                optimizer, c.schedule.c_str(), (long long)c.warmup,
                (long long)c.totalSteps, c.maxGradNorm,
                (long long)c.accumulation);
  return text;
}

double relativeError(double got, double want) {
  return std::abs(got - want) / std::max(std::abs(want), 1e-300);
}

double relativeError(const Tensor &got, const Matrix &want) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < want.v.size(); ++i) {
    diff += std::pow(got.getDouble(i) - want.v[i], 2);
    ref += want.v[i] * want.v[i];
  }
  return std::sqrt(diff / ref);
}

class TrainingLoop : public ::testing::TestWithParam<Config> {};

TEST_P(TrainingLoop, MatchesTheTextbookLoop) {
  const Config &c = GetParam();
  DialectRegistry registry;
  registry.insert<func::FuncDialect, nn::NNDialect, pir::PeftDialect>();
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return success();
  });

  Mlp initial;
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(mlpModule(initial), &ctx);
  ASSERT_TRUE(module) << diagnostics;

  OptimizerOptions options;
  if (c.viaSpec) {
    spec::PeftSpec spec;
    std::string error;
    ASSERT_TRUE(spec::parseSpecString(specYaml(c), "spec.yaml", spec, error))
        << error;
    analysis::writeSpecAttr(*module, spec);
    // A spec value wins over the option.
    options.lr = 123.0;
  } else {
    options.optimizer = c.optimizer;
    options.lr = c.lr;
    options.beta1 = c.beta1;
    options.beta2 = c.beta2;
    options.eps = c.eps;
    options.weightDecay = c.weightDecay;
    options.momentum = c.momentum;
    options.nesterov = c.nesterov;
    options.maxGradNorm = c.maxGradNorm;
    options.schedule = c.schedule;
    options.warmup = c.warmup;
    options.totalSteps = c.totalSteps;
    options.accumulation = c.accumulation;
  }
  PassManager pm(&ctx);
  pm.addPass(createDifferentiateTrainable());
  pm.addPass(createOptimizer(options));
  ASSERT_TRUE(succeeded(pm.run(*module))) << diagnostics;
  ASSERT_TRUE(succeeded(verify(*module))) << diagnostics;

  ref::Evaluator eval(*module, {/*promoteToF64=*/true});
  ASSERT_TRUE(succeeded(adapters::initializeParams(
      *module, 0, [&](StringRef name) { return eval.paramValue(name); },
      [&](StringRef name, const Tensor &value) {
        return eval.setParam(name, value);
      })))
      << diagnostics;

  Mlp expected;
  std::vector<StepRecord> want = referenceRun(c, expected);
  if (c.maxGradNorm > 0)
    EXPECT_TRUE(llvm::any_of(want, [&](const StepRecord &r) {
      return r.gradNorm > c.maxGradNorm;
    })) << "clipping never triggers: the case checks less than it says";

  for (int64_t step = 1; step <= c.steps; ++step) {
    StepRecord got{};
    if (c.accumulation == 1) {
      auto out = eval.run({stepTensor(step), tensorOf(inputOf(step, 0), {2, 4}),
                           tensorOf(targetOf(step, 0), {2, 2})},
                          "train_step");
      ASSERT_TRUE(succeeded(out)) << diagnostics;
      ASSERT_EQ(out->size(), 3u);
      got = {(*out)[0].getDouble(0), (*out)[1].getDouble(0),
             (*out)[2].getDouble(0)};
    } else {
      // The runtime's side of accumulation: sum the micro-batch gradients.
      std::vector<Tensor> sums;
      for (int64_t micro = 0; micro < c.accumulation; ++micro) {
        auto out = eval.run({tensorOf(inputOf(step, micro), {2, 4}),
                             tensorOf(targetOf(step, micro), {2, 2})},
                            "train_step");
        ASSERT_TRUE(succeeded(out)) << diagnostics;
        ASSERT_EQ(out->size(), 3u);
        got.loss += (*out)[0].getDouble(0) / c.accumulation;
        for (size_t g = 1; g < out->size(); ++g) {
          if (sums.size() < g) {
            sums.push_back(Tensor(DType::F64, (*out)[g].shape()));
          }
          for (int64_t i = 0; i < (*out)[g].numel(); ++i)
            sums[g - 1].setDouble(i, sums[g - 1].getDouble(i) +
                                         (*out)[g].getDouble(i));
        }
      }
      std::vector<Tensor> args{stepTensor(step)};
      args.insert(args.end(), sums.begin(), sums.end());
      auto out = eval.run(args, "apply_update");
      ASSERT_TRUE(succeeded(out)) << diagnostics;
      ASSERT_EQ(out->size(), 2u);
      got.gradNorm = (*out)[0].getDouble(0);
      got.lr = (*out)[1].getDouble(0);
    }
    const StepRecord &w = want[step - 1];
    EXPECT_LT(relativeError(got.loss, w.loss), 1e-10)
        << "step " << step << ": loss " << got.loss << " vs " << w.loss;
    EXPECT_LT(relativeError(got.gradNorm, w.gradNorm), 1e-10)
        << "step " << step << ": grad norm " << got.gradNorm << " vs "
        << w.gradNorm;
    if (w.lr == 0)
      EXPECT_EQ(got.lr, 0.0) << "step " << step;
    else
      EXPECT_LT(relativeError(got.lr, w.lr), 1e-14)
          << "step " << step << ": lr " << got.lr << " vs " << w.lr;
  }
  const Tensor *w1 = eval.paramOverride("fc1.weight");
  const Tensor *b1 = eval.paramOverride("fc1.bias");
  ASSERT_TRUE(w1 && b1);
  EXPECT_LT(relativeError(*w1, expected.w1), 1e-10);
  EXPECT_LT(relativeError(*b1, expected.b1), 1e-10);
  // The frozen weight is never assigned.
  EXPECT_EQ(eval.paramOverride("fc2.weight"), nullptr);
}

std::vector<Config> configs() {
  std::vector<Config> list;
  Config adam;
  adam.name = "adamw_cosine_warmup_clip";
  list.push_back(adam);

  Config sgd;
  sgd.name = "sgd_nesterov_linear_accumulate2";
  sgd.optimizer = "sgd";
  sgd.lr = 0.1;
  sgd.weightDecay = 0.01;
  sgd.momentum = 0.9;
  sgd.nesterov = true;
  sgd.maxGradNorm = 0;
  sgd.schedule = "linear";
  sgd.warmup = 1;
  sgd.totalSteps = 5;
  sgd.accumulation = 2;
  sgd.steps = 5;
  list.push_back(sgd);

  Config plainSgd = sgd;
  plainSgd.name = "sgd_no_momentum_constant";
  plainSgd.momentum = 0;
  plainSgd.nesterov = false;
  plainSgd.schedule = "constant";
  plainSgd.warmup = 0;
  plainSgd.accumulation = 1;
  list.push_back(plainSgd);

  Config spec;
  spec.name = "adamw_from_spec_accumulate3_clip";
  spec.viaSpec = true;
  spec.lr = 0.02;
  spec.beta1 = 0.8;
  spec.beta2 = 0.99;
  spec.eps = 1e-6;
  spec.weightDecay = 0.05;
  spec.maxGradNorm = 0.2;
  spec.schedule = "constant";
  spec.warmup = 2;
  spec.accumulation = 3;
  spec.steps = 5;
  list.push_back(spec);
  return list;
}

INSTANTIATE_TEST_SUITE_P(Optimizers, TrainingLoop,
                         ::testing::ValuesIn(configs()),
                         [](const ::testing::TestParamInfo<Config> &info) {
                           return info.param.name;
                         });

} // namespace
