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
#include "frontends/onnx/Importer.h"
#include "frontends/spec/PeftSpec.h"
#include "passes/AdapterInit.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"
#include "peft/SafeTensors.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mlir;
using namespace peft;

namespace {

std::string golden(const std::string &relative) {
  return peft::golden::goldenPath(relative);
}
using peft::golden::relative;
using peft::golden::rows;

/// One compiled golden case and its evaluator.
struct Trainer {
  OwningOpRef<ModuleOp> module;
  std::unique_ptr<ref::Evaluator> eval;
};

class LoweredParity : public ::testing::TestWithParam<std::string> {};

TEST_P(LoweredParity, LoweredStepMatchesPeft) {
  const std::string caseName = GetParam();
  auto buffer = llvm::MemoryBuffer::getFile(golden(caseName + "/losses.json"));
  ASSERT_TRUE(buffer);
  llvm::Expected<llvm::json::Value> json =
      llvm::json::parse((*buffer)->getBuffer());
  ASSERT_TRUE(bool(json) && json->getAsObject());
  const llvm::json::Object &g = *json->getAsObject();
  int64_t steps = g.getInteger("steps").value_or(0);
  std::vector<double> losses, norms, lrs;
  for (auto [key, out] :
       {std::make_pair("losses", &losses), std::make_pair("grad_norms", &norms),
        std::make_pair("lrs", &lrs)})
    if (const llvm::json::Array *a = g.getArray(key))
      for (const llvm::json::Value &v : *a)
        out->push_back(v.getAsNumber().value_or(NAN));
  ASSERT_TRUE(steps > 0 && (int64_t)losses.size() == steps &&
              (int64_t)norms.size() == steps && (int64_t)lrs.size() == steps);

  spec::PeftSpec spec;
  std::string error;
  ASSERT_TRUE(spec::parseSpecFile(golden(caseName + "/spec.yaml"), spec, error))
      << error;
  DialectRegistry registry;
  onnx_import::registerImportDialects(registry);
  registry.insert<func::FuncDialect, nn::NNDialect, pir::PeftDialect,
                  kern::KernDialect>();
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return success();
  });

  auto compile = [&](bool lowered) -> Trainer {
    Trainer t;
    onnx_import::ImportOptions options;
    for (const spec::InputShape &input : spec.training.inputs)
      options.dataShapes[input.name] = input.dims;
    t.module = onnx_import::importOnnxModel(
        ctx, golden(caseName + "/" + g.getString("model")->str()), options);
    if (!t.module)
      return t;
    PassManager canonicalize(&ctx);
    canonicalize.addPass(createCanonicalizerPass());
    if (failed(canonicalize.run(*t.module)) ||
        failed(analysis::annotateModules(*t.module)))
      return Trainer{};
    analysis::writeSpecAttr(*t.module, spec);
    PassManager pm(&ctx);
    InsertAdaptersOptions insert;
    insert.initAdapter = golden(caseName + "/initial_adapter");
    pm.addPass(createInsertAdapters(insert));
    pm.addPass(createFreezeParams());
    pm.addPass(createBuildLoss());
    pm.addPass(createDifferentiateTrainable());
    pm.addPass(createOptimizer());
    if (lowered) {
      pm.addPass(createDecompose());
      pm.addPass(createLowerGemms());
      pm.addPass(createOutlineKernels());
    }
    if (failed(pm.run(*t.module)) || failed(verify(*t.module)))
      return Trainer{};
    t.eval =
        std::make_unique<ref::Evaluator>(*t.module, ref::EvalOptions{true});
    ref::Evaluator &eval = *t.eval;
    if (failed(adapters::initializeParams(
            *t.module, spec.training.seed,
            [&](StringRef name) { return eval.paramValue(name); },
            [&](StringRef name, const Tensor &value) {
              return eval.setParam(name, value);
            })))
      return Trainer{};
    return t;
  };
  Trainer plain = compile(false), lowered = compile(true);
  ASSERT_TRUE(plain.eval && lowered.eval) << diagnostics;
  int64_t launches = 0;
  lowered.module->walk([&](kern::LaunchOp) { ++launches; });
  EXPECT_GT(launches, 0);

  SafeTensorsFile data;
  ASSERT_TRUE(
      readSafeTensors(golden(caseName + "/data.safetensors"), data, error))
      << error;
  int64_t batch = spec.training.batchSize.value_or(2);
  int64_t accumulation = spec.training.gradientAccumulationSteps;
  auto step = lowered.module->lookupSymbol<func::FuncOp>("train_step");
  ASSERT_TRUE(step);
  auto inputsOf = [&](func::FuncOp fn, int64_t micro, int64_t stepNumber) {
    std::vector<Tensor> inputs;
    for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
      if (fn.getArgAttr(i, "peft.step")) {
        Tensor t(DType::I64, {});
        t.setInt(0, stepNumber);
        inputs.push_back(t);
        continue;
      }
      auto name = fn.getArgAttrOfType<StringAttr>(i, "nn.name");
      const Tensor *all = name ? data.find(name.str()) : nullptr;
      EXPECT_TRUE(all) << "no data for argument " << i;
      if (all)
        inputs.push_back(rows(*all, micro * batch, batch));
    }
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

INSTANTIATE_TEST_SUITE_P(Goldens, LoweredParity,
                         ::testing::Values("lora_llama_qv", "lora_llama_layers",
                                           "rslora_llama", "dora_llama_qv",
                                           "ia3_llama", "lora_gpt2_cattn",
                                           "lora_bitfit_head",
                                           "lora_llama_trainer"),
                         [](const ::testing::TestParamInfo<std::string> &info) {
                           return info.param;
                         });

} // namespace
