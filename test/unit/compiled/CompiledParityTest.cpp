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
#include "frontends/onnx/Importer.h"
#include "frontends/spec/PeftSpec.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"
#include "peft/SafeTensors.h"
#include "peft/runtime.h"
#include "tools/peftc/Compile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
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

class CompiledParity : public ::testing::TestWithParam<std::string> {};

TEST_P(CompiledParity, CompiledTrainerMatchesPeft) {
  const std::string caseName = GetParam();
  Golden golden;
  std::string error;
  ASSERT_TRUE(readGolden(caseName, golden, error)) << caseName << ": " << error;
  spec::PeftSpec spec;
  ASSERT_TRUE(
      spec::parseSpecFile(goldenPath(caseName + "/spec.yaml"), spec, error))
      << error;

  DialectRegistry registry;
  onnx_import::registerImportDialects(registry);
  registry.insert<func::FuncDialect, nn::NNDialect, pir::PeftDialect,
                  kern::KernDialect>();
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  ctx.printOpOnDiagnostic(false);
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return success();
  });

  onnx_import::ImportOptions options;
  for (const spec::InputShape &input : spec.training.inputs)
    options.dataShapes[input.name] = spec::importShape(spec, input);
  std::string modelPath = goldenPath(caseName + "/" + golden.model);
  OwningOpRef<ModuleOp> module =
      onnx_import::importOnnxModel(ctx, modelPath, options);
  ASSERT_TRUE(module) << diagnostics;
  {
    PassManager pm(&ctx);
    pm.addPass(createCanonicalizerPass());
    ASSERT_TRUE(succeeded(pm.run(*module))) << diagnostics;
  }
  ASSERT_TRUE(succeeded(analysis::annotateModules(*module))) << diagnostics;
  analysis::writeSpecAttr(*module, spec);

  PassManager pm(&ctx);
  InsertAdaptersOptions insert;
  std::string interventions =
      goldenPath(caseName + "/initial_interventions.safetensors");
  bool reft = llvm::sys::fs::exists(interventions);
  if (reft)
    GTEST_SKIP() << caseName
                 << ": the ReFT ops (peft.reft_positions, "
                    "peft.householder_orthogonal, peft.loreft, peft.nodireft) "
                    "have no loop emitters yet";
  if (!reft)
    insert.initAdapter = goldenPath(caseName + "/initial_adapter");
  pm.addPass(createInsertAdapters(insert));
  InsertInterventionsOptions intervene;
  if (reft)
    intervene.initInterventions = interventions;
  pm.addPass(createInsertInterventions(intervene));
  pm.addPass(createFreezeParams());
  pm.addPass(createBuildLoss());
  pm.addPass(createDifferentiateTrainable());
  pm.addPass(createOptimizer());
  ASSERT_TRUE(succeeded(pm.run(*module))) << diagnostics;

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

  // The golden trains every step on the first micro-batches of the data.
  SafeTensorsFile data;
  ASSERT_TRUE(
      readSafeTensors(goldenPath(caseName + "/data.safetensors"), data, error))
      << error;
  int64_t batch = spec.training.batchSize.value_or(2);
  int64_t accumulation = spec.training.gradientAccumulationSteps;
  const program::Function *step = program->ir().function("train_step");
  ASSERT_TRUE(step);
  rt::Batch inputs;
  for (const program::Arg &arg : step->args) {
    if (arg.isStep)
      continue;
    const Tensor *all = data.find(arg.name);
    ASSERT_TRUE(all) << caseName << ": no data for " << arg.name;
    inputs[arg.name] = rows(*all, 0, batch * accumulation)
                           .castTo(program->ir().buffers[arg.buffer].dtype);
  }
  double lossErr = 0;
  for (int64_t s = 1; s <= golden.steps; ++s) {
    rt::StepMetrics metrics;
    ASSERT_TRUE(session->trainStep(inputs, s, metrics, error))
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
    wanted[keyOfPeftName(name)] = &tensor;
  double tensorErr = 0;
  size_t matched = 0;
  for (const program::Param &param : program->ir().params) {
    if (!param.trainable)
      continue;
    auto it = wanted.find(param.peftKey);
    ASSERT_NE(it, wanted.end())
        << caseName << ": the golden has no trained tensor '" << param.peftKey
        << "' (param " << param.name << ")";
    Tensor got;
    ASSERT_TRUE(session->getParam(param.name, got, error)) << error;
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
    EXPECT_LT(err, 1e-4) << caseName << ": " << param.peftKey;
    ++matched;
  }
  EXPECT_EQ(matched, trained.tensors.size()) << caseName;
  std::printf("%s compiled: %zu kernels, %lld steps; worst relative error: "
              "loss %.1e, trained tensors %.1e; arena %llu bytes (buffers "
              "%llu)\n",
              caseName.c_str(), program->ir().kernels.size(),
              (long long)golden.steps, lossErr, tensorErr,
              (unsigned long long)program->ir().arenaBytes,
              (unsigned long long)program->ir().bufferBytesSum);
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
