//===- RaisedGoldenTest.cpp - golden training with attention raised -------===//
//
// The PyTorch + PEFT parity goldens (test/goldens) trained as
// GoldenParityTest trains them, with peft-raise-attention first in the
// pipeline: the step then differentiates nn.attention through its gradient
// rule. Every step's loss and gradient norm, and every trained tensor, must
// still match the golden to 1e-9 relative. The `lowered` variants also run
// peft-decompose, peft-lower-gemms and peft-outline-kernels, as
// LoweredParityTest does, so the expanded forward and backward are checked
// too.
//
//===----------------------------------------------------------------------===//
#include "../training/GoldenCase.h"

#include "codegen/reference/Evaluator.h"
#include "frontends/spec/PeftSpec.h"
#include "passes/Passes.h"
#include "peft/SafeTensors.h"

#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cstdio>

using namespace mlir;
using namespace peft;
using namespace peft::golden;

namespace {

struct Case {
  std::string name;
  bool lowered;
  int64_t attentions; // nn.attention ops raised in @forward
};

class RaisedGolden : public ::testing::TestWithParam<Case> {};

TEST_P(RaisedGolden, TrainingMatchesPeft) {
  const Case &c = GetParam();
  Golden golden;
  spec::PeftSpec spec;
  std::string error;
  ASSERT_TRUE(readCase(c.name, golden, spec, error)) << error;
  ASSERT_EQ(spec.training.gradientAccumulationSteps, 1);
  SafeTensorsFile data;
  ASSERT_TRUE(readCaseData(c.name, data, error)) << error;

  PipelineContext pipeline;
  const std::string &diagnostics = pipeline.diagnostics;
  OwningOpRef<ModuleOp> module =
      compileCase(pipeline.ctx, c.name, spec, golden, /*more=*/nullptr,
                  [](PassManager &pm) { pm.addPass(createRaiseAttention()); });
  ASSERT_TRUE(module) << diagnostics;
  int64_t attentions = 0;
  module->lookupSymbol<func::FuncOp>("forward")->walk(
      [&](nn::AttentionOp) { ++attentions; });
  EXPECT_EQ(attentions, c.attentions) << c.name;
  if (c.lowered) {
    PassManager lower(&pipeline.ctx);
    lower.addPass(createDecompose());
    lower.addPass(createLowerGemms());
    lower.addPass(createOutlineKernels());
    ASSERT_TRUE(succeeded(lower.run(*module))) << diagnostics;
  }
  std::unique_ptr<ref::Evaluator> evaluator =
      startEvaluator(*module, spec.training.seed);
  ASSERT_TRUE(evaluator) << diagnostics;
  ref::Evaluator &eval = *evaluator;

  int64_t batch = spec.training.batchSize.value_or(2);
  auto step = module->lookupSymbol<func::FuncOp>("train_step");
  ASSERT_TRUE(step);
  double lossErr = 0, normErr = 0;
  std::vector<Tensor> inputs;
  for (int64_t s = 1; s <= golden.steps; ++s) {
    ASSERT_TRUE(stepInputs(step, data, 0, batch, s, inputs, error)) << error;
    auto out = eval.run(inputs, "train_step");
    ASSERT_TRUE(succeeded(out)) << diagnostics;
    double loss = (*out)[0].getDouble(0), norm = (*out)[1].getDouble(0);
    lossErr = std::max(lossErr, relative(loss, golden.losses[s - 1]));
    normErr = std::max(normErr, relative(norm, golden.gradNorms[s - 1]));
  }
  EXPECT_LT(lossErr, 1e-9) << c.name;
  EXPECT_LT(normErr, 1e-9) << c.name;

  TrainedTensors trained;
  ASSERT_TRUE(
      readTrained(c.name, caseStart(c.name).projectedPrefix, trained, error))
      << error;
  TrainedComparison compared;
  ASSERT_TRUE(
      compareTrainedOnEvaluator(*module, eval, trained, compared, error))
      << c.name << ": " << error << "\n"
      << diagnostics;
  EXPECT_EQ(compared.matched, trained.file.tensors.size()) << c.name;
  EXPECT_LT(compared.worst, 1e-9) << c.name << ": " << compared.worstKey;
  std::printf("%s%s: %lld nn.attention, %lld steps; worst relative error: "
              "loss %.1e, grad norm %.1e, trained tensors %.1e\n",
              c.name.c_str(), c.lowered ? " (lowered)" : "",
              (long long)attentions, (long long)golden.steps, lossErr, normErr,
              compared.worst);
}

INSTANTIATE_TEST_SUITE_P(
    Goldens, RaisedGolden,
    ::testing::Values(
        Case{"lora_llama_qv", false, 2}, Case{"lora_llama_qv", true, 2},
        Case{"lora_gpt2_cattn", false, 2}, Case{"lora_gpt2_cattn", true, 2},
        Case{"dora_llama_qv", false, 2}, Case{"ia3_llama", false, 2},
        Case{"rslora_llama", false, 2}, Case{"lora_llama_layers", false, 2},
        Case{"lora_bitfit_head", false, 2}, Case{"loreft_llama", false, 2},
        Case{"seq_bn_llama", false, 2}, Case{"prompt_tuning_llama", false, 2},
        Case{"nodireft_llama", false, 2}, Case{"direft_llama", false, 2},
        Case{"double_seq_bn_llama", false, 2}, Case{"par_bn_llama", false, 2}),
    [](const ::testing::TestParamInfo<Case> &info) {
      return info.param.name + (info.param.lowered ? "_lowered" : "");
    });

} // namespace
