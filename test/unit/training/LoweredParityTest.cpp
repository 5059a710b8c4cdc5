//===- LoweredParityTest.cpp - the goldens through the lowered IR ---------===//
//
// The training step as code generation sees it: the golden cases compiled
// as GoldenParityTest.cpp compiles them, then peft-decompose,
// peft-lower-gemms and peft-outline-kernels (adapters and losses as nn
// ops, GEMMs as kern.gemm, every other op in a kernel function run through
// kern.launch). Trained in f64 on the reference evaluator, every step's
// loss, gradient norm and lr must match PyTorch + PEFT's to 1e-9 relative,
// and the trained tensors those of the unlowered module to 1e-12 (which
// GoldenParityTest compares with PEFT's).
//
//===----------------------------------------------------------------------===//
#include "GoldenCase.h"

#include "codegen/reference/Evaluator.h"
#include "passes/Passes.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mlir;
using namespace peft;

namespace {

using namespace peft::golden;

/// One compiled golden case and its evaluator.
struct Trainer {
  OwningOpRef<ModuleOp> module;
  std::unique_ptr<ref::Evaluator> eval;
};

class LoweredParity : public ::testing::TestWithParam<std::string> {};

TEST_P(LoweredParity, LoweredStepMatchesPeft) {
  const std::string caseName = GetParam();
  Golden golden;
  spec::PeftSpec spec;
  std::string error;
  ASSERT_TRUE(readCase(caseName, golden, spec, error)) << error;
  int64_t steps = golden.steps;
  const std::vector<double> &losses = golden.losses, &norms = golden.gradNorms,
                            &lrs = golden.lrs;
  PipelineContext pipeline;
  const std::string &diagnostics = pipeline.diagnostics;

  auto compile = [&](bool lowered) -> Trainer {
    Trainer t;
    t.module =
        compileCase(pipeline.ctx, caseName, spec, golden, [&](PassManager &pm) {
          if (!lowered)
            return;
          pm.addPass(createDecompose());
          pm.addPass(createLowerGemms());
          pm.addPass(createOutlineKernels());
        });
    if (!t.module || failed(verify(*t.module)))
      return Trainer{};
    t.eval =
        std::make_unique<ref::Evaluator>(*t.module, ref::EvalOptions{true});
    if (failed(initializeOnEvaluator(*t.eval, *t.module, spec.training.seed)))
      return Trainer{};
    return t;
  };
  Trainer plain = compile(false), lowered = compile(true);
  ASSERT_TRUE(plain.eval && lowered.eval) << diagnostics;
  int64_t launches = 0;
  lowered.module->walk([&](kern::LaunchOp) { ++launches; });
  EXPECT_GT(launches, 0);

  SafeTensorsFile data;
  ASSERT_TRUE(readCaseData(caseName, data, error)) << error;
  int64_t batch = spec.training.batchSize.value_or(2);
  int64_t accumulation = spec.training.gradientAccumulationSteps;
  auto step = lowered.module->lookupSymbol<func::FuncOp>("train_step");
  ASSERT_TRUE(step);
  auto inputsOf = [&](func::FuncOp fn, int64_t micro, int64_t stepNumber) {
    std::vector<Tensor> inputs;
    EXPECT_TRUE(stepInputs(fn, data, micro, batch, stepNumber, inputs, error))
        << error;
    return inputs;
  };

  double worst = 0;
  for (int64_t s = 1; s <= steps; ++s) {
    double loss = 0, norm = 0, lr = 0;
    if (accumulation == 1) {
      auto out = lowered.eval->run(inputsOf(step, 0, s), "train_step");
      ASSERT_TRUE(succeeded(out)) << diagnostics;
      loss = (*out)[0].getDouble(0);
      norm = (*out)[1].getDouble(0);
      lr = (*out)[2].getDouble(0);
    } else {
      std::vector<Tensor> args{Tensor(DType::I64, {})};
      args[0].setInt(0, s);
      for (int64_t micro = 0; micro < accumulation; ++micro) {
        auto out = lowered.eval->run(inputsOf(step, micro, s), "train_step");
        ASSERT_TRUE(succeeded(out)) << diagnostics;
        loss += (*out)[0].getDouble(0) / accumulation;
        for (size_t i = 1; i < out->size(); ++i) {
          if (args.size() <= i)
            args.push_back(Tensor(DType::F64, (*out)[i].shape()));
          for (int64_t e = 0; e < (*out)[i].numel(); ++e)
            args[i].setDouble(e, args[i].getDouble(e) + (*out)[i].getDouble(e));
        }
      }
      auto out = lowered.eval->run(args, "apply_update");
      ASSERT_TRUE(succeeded(out)) << diagnostics;
      norm = (*out)[0].getDouble(0);
      lr = (*out)[1].getDouble(0);
    }
    worst = std::max(
        {worst, relative(loss, losses[s - 1]), relative(norm, norms[s - 1])});
    EXPECT_LT(relative(loss, losses[s - 1]), 1e-9)
        << caseName << " step " << s << ": " << loss << " vs " << losses[s - 1];
    EXPECT_LT(relative(norm, norms[s - 1]), 1e-9)
        << caseName << " step " << s << ": grad norm " << norm << " vs "
        << norms[s - 1];
    EXPECT_NEAR(lr, lrs[s - 1], 1e-15 * std::abs(lrs[s - 1]));
  }

  // The same trained tensors as the unlowered module after the same steps.
  auto plainStep = plain.module->lookupSymbol<func::FuncOp>("train_step");
  for (int64_t s = 1; s <= steps; ++s) {
    if (accumulation != 1)
      break;
    ASSERT_TRUE(
        succeeded(plain.eval->run(inputsOf(plainStep, 0, s), "train_step")));
  }
  double tensorErr = 0;
  size_t trained = 0;
  for (auto param : lowered.module->getOps<pir::ParamOp>()) {
    if (!param.getTrainable() || accumulation != 1)
      continue;
    FailureOr<Tensor> got = lowered.eval->paramValue(param.getSymName());
    FailureOr<Tensor> want = plain.eval->paramValue(param.getSymName());
    ASSERT_TRUE(succeeded(got) && succeeded(want));
    double diff = 0, ref = 0;
    for (int64_t i = 0; i < want->numel(); ++i) {
      diff += std::pow(got->getDouble(i) - want->getDouble(i), 2);
      ref += want->getDouble(i) * want->getDouble(i);
    }
    double err = std::sqrt(diff / std::max(ref, 1e-300));
    tensorErr = std::max(tensorErr, err);
    EXPECT_LT(err, 1e-12) << caseName << ": @" << param.getSymName().str();
    ++trained;
  }
  std::printf("%s (lowered, %lld launches): worst loss/norm error %.1e, "
              "trained tensors %.1e (%zu)\n",
              caseName.c_str(), (long long)launches, worst, tensorErr, trained);
}

INSTANTIATE_TEST_SUITE_P(
    Goldens, LoweredParity,
    ::testing::Values("lora_llama_qv", "lora_llama_layers", "rslora_llama",
                      "dora_llama_qv", "ia3_llama", "lora_gpt2_cattn",
                      "lora_bitfit_head", "lora_llama_trainer", "sparse_llama",
                      "loreft_llama", "nodireft_llama", "direft_llama",
                      "prompt_tuning_llama", "prefix_tuning_llama",
                      "prefix_tuning_proj_llama", "prefix_tuning_gpt2",
                      "seq_bn_llama", "double_seq_bn_llama", "par_bn_llama"),
    [](const ::testing::TestParamInfo<std::string> &info) {
      return info.param;
    });

} // namespace
