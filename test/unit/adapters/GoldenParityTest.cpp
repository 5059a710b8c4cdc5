// Parity with PyTorch + PEFT on the goldens of test/goldens (README there):
// each case's model.onnx with its spec.yaml and initial_adapter/ goes through
// peftc's import, peft-insert-adapters (--init-adapter), peft-freeze and
// peft-build-loss; the reference evaluator in f64 then computes @loss on the
// case's data. Checked against losses.json:
//   - every micro-batch loss of step 1 and their mean (losses[0]),
//   - the loss at PEFT's final trainable tensors (final_loss),
//   - `print_trainable_parameters()` (trainable_line),
// all to 1e-9 relative.
#ifndef PEFT_GOLDENS_DIR
#define PEFT_GOLDENS_DIR PEFT_SOURCE_DIR "/test/goldens"
#endif
#include "../training/GoldenCase.h"

#include "codegen/reference/Evaluator.h"
#include "frontends/onnx/Importer.h"
#include "frontends/spec/PeftSpec.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"
#include "peft/SafeTensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

using namespace mlir;

namespace {

constexpr double kRelTol = 1e-9;

std::string goldensDir() {
  return std::string(PEFT_SOURCE_DIR) + "/test/goldens";
}

/// Every case directory that starts from a PEFT-layout adapter (one with
/// initial_adapter/; pyreft's ReFT cases have their own parity test in
/// test/unit/training), sorted.
std::vector<std::string> goldenCases() {
  std::vector<std::string> cases;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(goldensDir(), ec), end;
       it != end && !ec; it.increment(ec))
    if (llvm::sys::fs::exists(it->path() + "/spec.yaml") &&
        llvm::sys::fs::exists(it->path() + "/initial_adapter"))
      cases.push_back(llvm::sys::path::filename(it->path()).str());
  std::sort(cases.begin(), cases.end());
  return cases;
}

/// Collects error diagnostics so a failing step says why.
struct Errors {
  explicit Errors(MLIRContext &context)
      : handler(&context, [this](Diagnostic &diag) {
          if (diag.getSeverity() == DiagnosticSeverity::Error)
            text += diag.str() + "\n";
          return success();
        }) {}
  ScopedDiagnosticHandler handler;
  std::string text;
};

class GoldenParity : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    caseDir = goldensDir() + "/" + GetParam();
    auto buffer = llvm::MemoryBuffer::getFile(caseDir + "/losses.json");
    ASSERT_TRUE(bool(buffer)) << "no losses.json in " << caseDir;
    auto parsed = llvm::json::parse((*buffer)->getBuffer());
    ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
    losses = std::move(*parsed);
  }

  const llvm::json::Object &golden() { return *losses.getAsObject(); }

  /// peftc model.onnx --spec spec.yaml [--init-adapter initial_adapter],
  /// through peft-build-loss (or peft-freeze for --print-trainable).
  OwningOpRef<ModuleOp> compile(MLIRContext &context, bool withLoss,
                                std::string &errors) {
    Errors diagnostics(context);
    peft::spec::PeftSpec spec;
    std::string error;
    if (!peft::spec::parseSpecFile(caseDir + "/spec.yaml", spec, error)) {
      errors = error;
      return nullptr;
    }
    peft::onnx_import::ImportOptions options;
    for (const peft::spec::InputShape &input : spec.training.inputs)
      options.dataShapes[input.name] = peft::spec::importShape(spec, input);
    std::string model =
        caseDir + "/" + golden().getString("model").value_or("").str();
    OwningOpRef<ModuleOp> module =
        peft::onnx_import::importOnnxModel(context, model, options);
    if (!module) {
      errors = diagnostics.text;
      return nullptr;
    }
    PassManager canonicalize(&context);
    canonicalize.addPass(createCanonicalizerPass());
    peft::spec::ResolvedTargets resolved;
    if (failed(canonicalize.run(*module)) ||
        failed(peft::analysis::attachSpec(*module, spec, resolved, error))) {
      errors = error + diagnostics.text;
      return nullptr;
    }
    PassManager training(&context);
    peft::InsertAdaptersOptions insert;
    insert.initAdapter = llvm::sys::fs::exists(
                             peft::golden::prefixEncoderFile(caseDir))
                             ? peft::golden::prefixEncoderFile(caseDir)
                             : caseDir + "/initial_adapter";
    training.addPass(peft::createInsertPrefixTuning());
    training.addPass(peft::createInsertAdapters(insert));
    training.addPass(peft::createFreezeParams());
    if (withLoss)
      training.addPass(peft::createBuildLoss());
    if (failed(training.run(*module))) {
      errors = diagnostics.text;
      return nullptr;
    }
    return module;
  }

  /// Runs @loss on the micro-batches of one optimizer step (rows in order,
  /// batch_size rows each, gradient_accumulation_steps of them).
  std::vector<double> microBatchLosses(peft::ref::Evaluator &eval,
                                       func::FuncOp loss,
                                       const peft::SafeTensorsFile &data,
                                       int64_t batchSize, int64_t steps) {
    std::vector<double> out;
    for (int64_t step = 0; step < steps; ++step) {
      std::vector<peft::Tensor> inputs;
      for (unsigned i = 0; i < loss.getNumArguments(); ++i) {
        auto name = loss.getArgAttrOfType<StringAttr>(i, "nn.name");
        const peft::Tensor *all = data.find(name.str());
        EXPECT_TRUE(all) << "data has no '" << name.str() << "'";
        if (!all)
          return {};
        peft::Shape shape = all->shape();
        int64_t rowSize = all->numel() / shape[0];
        shape[0] = batchSize;
        peft::Tensor batch(all->dtype(), shape);
        for (int64_t k = 0; k < batch.numel(); ++k)
          batch.setInt(k, all->getInt(step * batchSize * rowSize + k));
        inputs.push_back(std::move(batch));
      }
      auto result = eval.run(inputs, "loss");
      EXPECT_TRUE(succeeded(result));
      if (failed(result))
        return {};
      out.push_back((*result)[0].getDouble(0));
    }
    return out;
  }

  std::string caseDir;
  llvm::json::Value losses = nullptr;
};

void expectRelNear(double actual, double expected, const std::string &what) {
  double rel =
      std::fabs(actual - expected) / std::max(std::fabs(expected), 1e-300);
  std::printf("  %-28s peftc %.17g  PEFT %.17g  rel %.1e\n", what.c_str(),
              actual, expected, rel);
  EXPECT_LE(rel, kRelTol) << what << ": got " << actual << ", PEFT " << expected
                          << " (relative error " << rel << ")";
}

TEST_P(GoldenParity, TrainableLine) {
  MLIRContext context;
  std::string errors;
  OwningOpRef<ModuleOp> module = compile(context, /*withLoss=*/false, errors);
  ASSERT_TRUE(module) << errors;
  FailureOr<peft::analysis::TrainableCount> count =
      peft::analysis::countTrainable(*module);
  ASSERT_TRUE(succeeded(count));
  EXPECT_EQ(count->line(),
            golden().getString("trainable_line").value_or("").str());
}

TEST_P(GoldenParity, LossAtInitialAndFinalAdapter) {
  MLIRContext context;
  std::string errors;
  OwningOpRef<ModuleOp> module = compile(context, /*withLoss=*/true, errors);
  ASSERT_TRUE(module) << errors;
  Errors diagnostics(context);

  peft::spec::PeftSpec spec;
  ASSERT_TRUE(succeeded(peft::analysis::readSpecAttr(*module, "test")));
  spec = *peft::analysis::readSpecAttr(*module, "test");
  peft::SafeTensorsFile data;
  std::string error;
  ASSERT_TRUE(peft::readSafeTensors(caseDir + "/data.safetensors", data, error))
      << error;
  int64_t batchSize = spec.training.batchSize.value_or(2);
  int64_t accumulation = spec.training.gradientAccumulationSteps;
  auto loss = module->lookupSymbol<func::FuncOp>("loss");
  ASSERT_TRUE(loss);

  peft::ref::Evaluator eval(*module, {/*promoteToF64=*/true});
  std::vector<double> initial =
      microBatchLosses(eval, loss, data, batchSize, accumulation);
  ASSERT_EQ(initial.size(), size_t(accumulation)) << diagnostics.text;
  const llvm::json::Array *micro =
      golden().getArray("micro_batch_losses")->front().getAsArray();
  double mean = 0;
  for (int64_t k = 0; k < accumulation; ++k) {
    expectRelNear(initial[k], *(*micro)[k].getAsNumber(),
                  "step 1, micro-batch " + std::to_string(k));
    mean += initial[k] / double(accumulation);
  }
  expectRelNear(mean, *golden().getArray("losses")->front().getAsNumber(),
                "losses[0]");

  // PEFT's trained tensors, under PEFT's parameter names
  // (`...lora_A.default.weight`, `lm_head.modules_to_save.default.weight`).
  peft::SafeTensorsFile trained;
  ASSERT_TRUE(peft::readSafeTensors(caseDir + "/final_trainable.safetensors",
                                    trained, error))
      << error;
  int set = 0;
  bool projectedPrefix =
      llvm::sys::fs::exists(peft::golden::prefixEncoderFile(caseDir));
  for (auto &[name, tensor] : trained.tensors) {
    std::string key = peft::golden::keyOfTrainedName(name, projectedPrefix);
    peft::pir::ParamOp param;
    for (auto p : module->getOps<peft::pir::ParamOp>())
      if (auto attr = p->getAttrOfType<StringAttr>(peft::analysis::attr::kKey))
        if (attr.getValue() == key)
          param = p;
    ASSERT_TRUE(param) << "no trainable param has PEFT's key " << key;
    peft::Tensor value = tensor;
    if (param->hasAttr(peft::analysis::attr::kKeyTransposed)) {
      peft::Tensor transposed(value.dtype(),
                              {value.shape()[1], value.shape()[0]});
      for (int64_t i = 0; i < value.shape()[0]; ++i)
        for (int64_t j = 0; j < value.shape()[1]; ++j)
          transposed.setDouble(j * value.shape()[0] + i,
                               value.getDouble(i * value.shape()[1] + j));
      value = transposed;
    }
    ASSERT_TRUE(succeeded(eval.setParam(param.getSymName(), value)))
        << diagnostics.text;
    ++set;
  }
  int trainable = 0;
  for (auto p : module->getOps<peft::pir::ParamOp>())
    trainable += p.getTrainable();
  EXPECT_EQ(set, trainable) << "final_trainable.safetensors should hold every "
                               "trainable tensor";
  std::vector<double> final =
      microBatchLosses(eval, loss, data, batchSize, accumulation);
  ASSERT_EQ(final.size(), size_t(accumulation)) << diagnostics.text;
  double finalMean = 0;
  for (double value : final)
    finalMean += value / double(accumulation);
  expectRelNear(finalMean, *golden().getNumber("final_loss"), "final_loss");
}

INSTANTIATE_TEST_SUITE_P(Goldens, GoldenParity,
                         ::testing::ValuesIn(goldenCases()),
                         [](const auto &info) { return info.param; });

TEST(GoldenParityCases, AllFound) {
  // The suite must not pass vacuously.
  EXPECT_GE(goldenCases().size(), 8u);
}

} // namespace
