//===- CompiledParityTest.cpp - the goldens through compiled CPU code -----===//
//
// Each PyTorch + PEFT golden case (test/goldens) compiled as peftc compiles
// a trainer: import, spec, adapters started from the golden's initial
// adapter, freeze, loss, autodiff, optimizer, then peft::driver::lowerProgram
// (decompose, GEMMs, kernel outlining, loop kernels, memory plan, program).
// The loop kernels are JIT-compiled with the same LLVM pipeline the object
// emitter uses and the program runs on the runtime's Session (oneDNN GEMMs,
// arena, OpenMP), in f32. Every step's loss must match the f64 golden to
// 1e-4 relative and every trained tensor to ||delta|| / ||ref|| < 1e-4.
//
//===----------------------------------------------------------------------===//
#include "../training/GoldenCase.h"

#include "codegen/cpu/KernelCompiler.h"
#include "codegen/reference/Evaluator.h"
#include "frontends/spec/PeftSpec.h"
#include "peft/SafeTensors.h"
#include "peft/runtime.h"
#include "tools/peftc/Compile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>

using namespace mlir;
using namespace peft;
using namespace peft::golden;

namespace {

/// A training step compiled as peftc compiles a trainer (lowerProgram, the
/// loop kernels JIT-compiled with the object emitter's pipeline) and the
/// runtime session that runs it on the model's weights. The JIT holds the
/// kernels the program calls.
struct CompiledTrainer {
  driver::LoweredProgram lowered;
  std::unique_ptr<codegen::KernelJIT> jit;
  std::shared_ptr<const rt::Program> program;
  std::unique_ptr<rt::Session> session;
};

/// Compiles `module`, the training step of golden case `caseName`
/// (compileCase). False with `error` (or, for the lowering, the context's
/// diagnostics) on failure.
bool compileTrainer(ModuleOp module, const std::string &caseName,
                    const Golden &golden, const spec::PeftSpec &spec,
                    CompiledTrainer &out, std::string &error) {
  std::string modelPath = goldenPath(caseName + "/" + golden.model);
  driver::CompileOptions compile;
  compile.modelPath = modelPath;
  compile.seed = spec.training.seed;
  FailureOr<driver::LoweredProgram> lowered =
      driver::lowerProgram(module, compile);
  if (failed(lowered)) {
    error = "the lowering failed";
    return false;
  }
  out.lowered = std::move(*lowered);
  auto jit = codegen::KernelJIT::create(*out.lowered.loops);
  if (!jit) {
    error = llvm::toString(jit.takeError());
    return false;
  }
  out.jit = std::move(*jit);
  out.program = rt::Program::fromParts(
      program::encodeProgram(out.lowered.program), out.jit->kernels(), error);
  if (!out.program)
    return false;
  rt::Options runOptions;
  runOptions.weightsPath = modelPath;
  out.session = rt::Session::create(out.program, runOptions, error);
  return out.session != nullptr;
}

/// The runtime inputs of `program`'s train_step: the first `count` rows of
/// each data tensor, by argument name, in the argument's dtype.
bool runtimeInputs(const rt::Program &program, const SafeTensorsFile &data,
                   int64_t count, rt::Batch &inputs, std::string &error) {
  const program::Function *step = program.ir().function("train_step");
  if (!step) {
    error = "the program has no train_step";
    return false;
  }
  for (const program::Arg &arg : step->args) {
    if (arg.isStep)
      continue;
    const Tensor *all = data.find(arg.name);
    if (!all) {
      error = "no data for " + arg.name;
      return false;
    }
    inputs[arg.name] =
        rows(*all, 0, count).castTo(program.ir().buffers[arg.buffer].dtype);
  }
  return true;
}

class CompiledParity : public ::testing::TestWithParam<std::string> {};

TEST_P(CompiledParity, CompiledTrainerMatchesPeft) {
  const std::string caseName = GetParam();
  Golden golden;
  spec::PeftSpec spec;
  std::string error;
  ASSERT_TRUE(readCase(caseName, golden, spec, error)) << error;

  PipelineContext pipeline;
  const std::string &diagnostics = pipeline.diagnostics;
  OwningOpRef<ModuleOp> module =
      compileCase(pipeline.ctx, caseName, spec, golden);
  ASSERT_TRUE(module) << diagnostics;
  bool projectedPrefix = caseStart(caseName).projectedPrefix;
  CompiledTrainer trainer;
  ASSERT_TRUE(compileTrainer(*module, caseName, golden, spec, trainer, error))
      << caseName << ": " << error << "\n"
      << diagnostics;
  const rt::Program &program = *trainer.program;
  rt::Session &session = *trainer.session;

  // The golden trains every step on the first micro-batches of the data.
  SafeTensorsFile data;
  ASSERT_TRUE(readCaseData(caseName, data, error)) << error;
  int64_t batch = spec.training.batchSize.value_or(2);
  int64_t accumulation = spec.training.gradientAccumulationSteps;
  rt::Batch inputs;
  ASSERT_TRUE(runtimeInputs(program, data, batch * accumulation, inputs, error))
      << caseName << ": " << error;
  double lossErr = 0;
  for (int64_t s = 1; s <= golden.steps; ++s) {
    rt::StepMetrics metrics;
    ASSERT_TRUE(session.trainStep(inputs, s, metrics, error))
        << caseName << ": " << error;
    lossErr = std::max(lossErr, relative(metrics.loss, golden.losses[s - 1]));
    EXPECT_LT(relative(metrics.loss, golden.losses[s - 1]), 1e-4)
        << caseName << " step " << s << ": loss " << metrics.loss << " vs "
        << golden.losses[s - 1];
    EXPECT_LT(relative(metrics.gradNorm, golden.gradNorms[s - 1]), 1e-3)
        << caseName << " step " << s;
  }

  SafeTensorsFile trained;
  ASSERT_TRUE(readSafeTensors(
      goldenPath(caseName + "/final_trainable.safetensors"), trained, error))
      << error;
  std::map<std::string, const Tensor *> wanted;
  for (const auto &[name, tensor] : trained.tensors)
    wanted[keyOfTrainedName(name, projectedPrefix)] = &tensor;
  double tensorErr = 0;
  size_t matched = 0;
  for (const program::Param &param : program.ir().params) {
    if (!param.trainable)
      continue;
    // A projected prefix's encoder is trained but not saved in the adapter
    // (no key): its params are named as PEFT's state dict names them.
    const std::string &key = param.peftKey.empty() ? param.name : param.peftKey;
    auto it = wanted.find(key);
    ASSERT_NE(it, wanted.end())
        << caseName << ": the golden has no trained tensor '" << key
        << "' (param " << param.name << ")";
    Tensor got;
    ASSERT_TRUE(session.getParam(param.name, got, error)) << error;
    const Tensor &want = *it->second;
    ASSERT_EQ(got.numel(), want.numel()) << param.peftKey;
    int64_t cols = got.rank() == 2 ? got.shape()[1] : 1;
    int64_t rowsOfGot = got.rank() == 2 ? got.shape()[0] : got.numel();
    // GPT-2's fused c_attn bias: its key third has a true gradient of
    // exactly zero (softmax is invariant to a per-query constant, which is
    // what a key bias adds to every score), so what AdamW does with it is
    // normalised rounding noise, in f32 and f64 alike. There the check is
    // AdamW's bound: each step moves an element by at most about lr.
    bool keyBias =
        llvm::StringRef(param.peftKey).ends_with("c_attn.bias") ||
        llvm::StringRef(param.peftKey).ends_with("c_attn.base_layer.bias");
    int64_t third = want.numel() / 3;
    double bound = golden.steps * spec.training.optimizer.lr * 1.01;
    double diff = 0, ref = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      int64_t j =
          param.keyTransposed ? (i % rowsOfGot) * cols + i / rowsOfGot : i;
      if (keyBias && i >= third && i < 2 * third) {
        EXPECT_LE(std::abs(got.getDouble(j) - want.getDouble(i)), 2 * bound)
            << caseName << ": " << param.peftKey << "[" << i << "]";
        continue;
      }
      diff += std::pow(got.getDouble(j) - want.getDouble(i), 2);
      ref += want.getDouble(i) * want.getDouble(i);
    }
    double err = std::sqrt(diff / std::max(ref, 1e-300));
    tensorErr = std::max(tensorErr, err);
    EXPECT_LT(err, 1e-4) << caseName << ": " << key;
    ++matched;
  }
  EXPECT_EQ(matched, trained.tensors.size()) << caseName;

  // PEFT saves a projected prefix as its encoder's output: the session's
  // saved adapter is PEFT's final adapter, key for key.
  if (projectedPrefix) {
    llvm::SmallString<128> dir;
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("peft-prefix", dir));
    ASSERT_TRUE(session.saveAdapter(dir.str().str(), error)) << error;
    SafeTensorsFile saved, peft;
    ASSERT_TRUE(readSafeTensors((dir + "/adapter_model.safetensors").str(),
                                saved, error))
        << error;
    ASSERT_TRUE(readSafeTensors(
        goldenPath(caseName + "/final_adapter/adapter_model.safetensors"), peft,
        error))
        << error;
    llvm::sys::fs::remove_directories(dir);
    ASSERT_EQ(saved.tensors.size(), peft.tensors.size());
    for (const auto &[key, want] : peft.tensors) {
      const Tensor *got = saved.find(key);
      ASSERT_TRUE(got) << caseName << ": the saved adapter has no " << key;
      ASSERT_EQ(got->shape(), want.shape()) << key;
      double diff = 0, ref = 0;
      for (int64_t i = 0; i < want.numel(); ++i) {
        diff += std::pow(got->getDouble(i) - want.getDouble(i), 2);
        ref += want.getDouble(i) * want.getDouble(i);
      }
      EXPECT_LT(std::sqrt(diff / std::max(ref, 1e-300)), 1e-4) << key;
    }
  }
  std::printf("%s compiled: %zu kernels, %lld steps; worst relative error: "
              "loss %.1e, trained tensors %.1e; arena %llu bytes (buffers "
              "%llu)\n",
              caseName.c_str(), program.ir().kernels.size(),
              (long long)golden.steps, lossErr, tensorErr,
              (unsigned long long)program.ir().arenaBytes,
              (unsigned long long)program.ir().bufferBytesSum);
}

/// pyreft's dropout (0.1) on the loreft_llama case: the compiled trainer
/// draws the same seeded Philox masks as the reference evaluator, so its f32
/// steps follow the f64 reference's to 1e-4; the dropout is active (the
/// first loss leaves the dropout-free golden's).
TEST(CompiledReft, DropoutMatchesTheReferenceEvaluator) {
  const std::string caseName = "loreft_llama";
  Golden golden;
  spec::PeftSpec spec;
  std::string error;
  ASSERT_TRUE(readCase(caseName, golden, spec, error)) << error;
  auto *reft = std::get_if<spec::ReftConfig>(&spec.methods.front().config);
  ASSERT_TRUE(reft);
  reft->dropout = 0.1;

  PipelineContext pipeline;
  const std::string &diagnostics = pipeline.diagnostics;
  OwningOpRef<ModuleOp> module =
      compileCase(pipeline.ctx, caseName, spec, golden);
  ASSERT_TRUE(module) << diagnostics;
  int64_t dropouts = 0;
  module->walk([&](pir::DropoutOp) { ++dropouts; });
  EXPECT_GT(dropouts, 0);

  // The reference evaluator on a copy, in f64.
  OwningOpRef<ModuleOp> reference = module->clone();
  ref::Evaluator eval(*reference, {/*promoteToF64=*/true});
  ASSERT_TRUE(
      succeeded(initializeOnEvaluator(eval, *reference, spec.training.seed)))
      << diagnostics;

  CompiledTrainer trainer;
  ASSERT_TRUE(compileTrainer(*module, caseName, golden, spec, trainer, error))
      << error << "\n"
      << diagnostics;

  SafeTensorsFile data;
  ASSERT_TRUE(readCaseData(caseName, data, error)) << error;
  int64_t batch = spec.training.batchSize.value_or(2);
  auto step = reference->lookupSymbol<func::FuncOp>("train_step");
  ASSERT_TRUE(step);
  rt::Batch batchInputs;
  ASSERT_TRUE(runtimeInputs(*trainer.program, data, batch, batchInputs, error))
      << error;
  for (int64_t s = 1; s <= 5; ++s) {
    std::vector<Tensor> inputs;
    ASSERT_TRUE(stepInputs(step, data, 0, batch, s, inputs, error)) << error;
    auto want = eval.run(inputs, "train_step");
    ASSERT_TRUE(succeeded(want)) << diagnostics;
    rt::StepMetrics metrics;
    ASSERT_TRUE(trainer.session->trainStep(batchInputs, s, metrics, error))
        << error;
    double loss = (*want)[0].getDouble(0);
    EXPECT_LT(relative(metrics.loss, loss), 1e-4)
        << "step " << s << ": compiled " << metrics.loss << ", reference "
        << loss;
    if (s == 1)
      EXPECT_GT(relative(loss, golden.losses[0]), 1e-6)
          << "dropout left the first loss unchanged";
    std::printf("step %lld: loss %.6f (reference %.6f, no dropout %.6f)\n",
                (long long)s, metrics.loss, loss, golden.losses[s - 1]);
  }
}

std::vector<std::string> goldenCases() {
  std::vector<std::string> cases;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(PEFT_GOLDENS_DIR, ec), end;
       it != end && !ec; it.increment(ec))
    if (llvm::sys::fs::exists(it->path() + "/spec.yaml"))
      cases.push_back(llvm::sys::path::filename(it->path()).str());
  std::sort(cases.begin(), cases.end());
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Goldens, CompiledParity,
                         ::testing::ValuesIn(goldenCases()),
                         [](const auto &info) { return info.param; });

} // namespace
