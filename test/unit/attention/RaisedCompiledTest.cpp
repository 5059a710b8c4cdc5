//===- RaisedCompiledTest.cpp - raised attention through compiled code ---===//
//
// LLaMA and GPT-2 LoRA goldens compiled as CompiledParityTest compiles them,
// with peft-raise-attention first in the pipeline: nn.attention and its
// gradient go through peft-decompose into the GEMMs and loop kernels the CPU
// code generator already has, are JIT-compiled and run on the runtime's
// Session in f32. Losses must match the f64 golden to 1e-4 relative and the
// trained tensors to ||delta|| / ||ref|| < 1e-4, as without raising.
//
//===----------------------------------------------------------------------===//
#include "../training/GoldenCase.h"

#include "codegen/cpu/KernelCompiler.h"
#include "frontends/spec/PeftSpec.h"
#include "passes/Passes.h"
#include "peft/SafeTensors.h"
#include "peft/runtime.h"
#include "tools/peftc/Compile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace peft;
using namespace peft::golden;

namespace {

class RaisedCompiled : public ::testing::TestWithParam<std::string> {};

TEST_P(RaisedCompiled, CompiledTrainerMatchesPeft) {
  const std::string caseName = GetParam();
  Golden golden;
  spec::PeftSpec spec;
  std::string error;
  ASSERT_TRUE(readCase(caseName, golden, spec, error)) << error;
  ASSERT_EQ(spec.training.gradientAccumulationSteps, 1);

  PipelineContext pipeline;
  const std::string &diagnostics = pipeline.diagnostics;
  OwningOpRef<ModuleOp> module =
      compileCase(pipeline.ctx, caseName, spec, golden, /*more=*/nullptr,
                  [](PassManager &pm) { pm.addPass(createRaiseAttention()); });
  ASSERT_TRUE(module) << diagnostics;
  int64_t attentions = 0;
  module->walk([&](nn::AttentionOp) { ++attentions; });
  EXPECT_GT(attentions, 0) << caseName;

  std::string modelPath = goldenPath(caseName + "/" + golden.model);
  driver::CompileOptions compile;
  compile.modelPath = modelPath;
  compile.seed = spec.training.seed;
  FailureOr<driver::LoweredProgram> lowered =
      driver::lowerProgram(*module, compile);
  ASSERT_TRUE(succeeded(lowered)) << caseName << ": " << diagnostics;
  auto jit = codegen::KernelJIT::create(*lowered->loops);
  ASSERT_TRUE(!!jit) << llvm::toString(jit.takeError());
  std::shared_ptr<const rt::Program> program = rt::Program::fromParts(
      program::encodeProgram(lowered->program), (*jit)->kernels(), error);
  ASSERT_TRUE(program) << error;
  rt::Options runOptions;
  runOptions.weightsPath = modelPath;
  std::unique_ptr<rt::Session> session =
      rt::Session::create(program, runOptions, error);
  ASSERT_TRUE(session) << error;

  SafeTensorsFile data;
  ASSERT_TRUE(readCaseData(caseName, data, error)) << error;
  int64_t batch = spec.training.batchSize.value_or(2);
  const program::Function *step = program->ir().function("train_step");
  ASSERT_TRUE(step);
  rt::Batch inputs;
  for (const program::Arg &arg : step->args) {
    if (arg.isStep)
      continue;
    const Tensor *all = data.find(arg.name);
    ASSERT_TRUE(all) << caseName << ": no data for " << arg.name;
    inputs[arg.name] =
        rows(*all, 0, batch).castTo(program->ir().buffers[arg.buffer].dtype);
  }
  double lossErr = 0;
  for (int64_t s = 1; s <= golden.steps; ++s) {
    rt::StepMetrics metrics;
    ASSERT_TRUE(session->trainStep(inputs, s, metrics, error))
        << caseName << ": " << error;
    lossErr = std::max(lossErr, relative(metrics.loss, golden.losses[s - 1]));
  }
  EXPECT_LT(lossErr, 1e-4) << caseName;

  TrainedTensors trained;
  ASSERT_TRUE(readTrained(caseName, caseStart(caseName).projectedPrefix,
                          trained, error))
      << error;
  // GPT-2's fused c_attn bias: the gradient of its key third is exactly
  // zero (softmax ignores a per-query constant), so AdamW moves it by
  // normalised rounding noise; CompiledParityTest bounds it by AdamW's
  // step size, and so does this test.
  double bound = golden.steps * spec.training.optimizer.lr * 1.01;
  double tensorErr = 0;
  size_t matched = 0;
  for (const program::Param &param : program->ir().params) {
    if (!param.trainable)
      continue;
    auto it = trained.byKey.find(param.peftKey);
    ASSERT_NE(it, trained.byKey.end()) << caseName << ": " << param.peftKey;
    Tensor got;
    ASSERT_TRUE(session->getParam(param.name, got, error)) << error;
    const Tensor &want = *it->second;
    ASSERT_EQ(got.numel(), want.numel()) << param.peftKey;
    llvm::StringRef key = param.peftKey;
    int64_t third =
        key.ends_with("c_attn.bias") || key.ends_with("c_attn.base_layer.bias")
            ? want.numel() / 3
            : 0;
    auto keyBias = [&](int64_t i, double delta) {
      if (i < third || i >= 2 * third)
        return false;
      EXPECT_LE(std::abs(delta), 2 * bound)
          << caseName << ": " << param.peftKey << "[" << i << "]";
      return true;
    };
    tensorErr = std::max(tensorErr,
                         trainedError(got, want, param.keyTransposed, keyBias));
    ++matched;
  }
  EXPECT_EQ(matched, trained.file.tensors.size()) << caseName;
  EXPECT_LT(tensorErr, 1e-4) << caseName;
  std::printf("%s compiled with %lld nn.attention: %zu kernels, %lld steps; "
              "worst relative error: loss %.1e, trained tensors %.1e\n",
              caseName.c_str(), (long long)attentions,
              program->ir().kernels.size(), (long long)golden.steps, lossErr,
              tensorErr);
}

INSTANTIATE_TEST_SUITE_P(Goldens, RaisedCompiled,
                         ::testing::Values("lora_llama_qv", "lora_gpt2_cattn",
                                           "prompt_tuning_llama"),
                         [](const auto &info) { return info.param; });

} // namespace
