//===- GoldenParityTest.cpp - training parity with PyTorch + PEFT ---------===//
//
// Each case of test/goldens (made by scripts/gen_goldens with PyTorch + PEFT
// in f64) is compiled the way peftc compiles a spec (import, spec attached,
// peft-insert-adapters from the case's initial adapter, peft-freeze,
// peft-build-loss, peft-differentiate, peft-optimizer) and trained for the
// golden's steps on the reference evaluator in f64, micro-batches of
// `batch_size` rows taken in order from data.safetensors. Every step's loss
// (and micro-batch losses, gradient norm and lr), the loss after the last
// step and every trained tensor must match the golden to 1e-9 relative.
//
//===----------------------------------------------------------------------===//
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
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

using namespace mlir;
using namespace peft;

namespace {

std::string goldenPath(const std::string &relative) {
  return std::string(PEFT_GOLDENS_DIR) + "/" + relative;
}

/// PEFT's parameter name -> the key it saves the tensor under
/// (`...lora_A.default.weight` -> `...lora_A.weight`,
/// `lm_head.modules_to_save.default.weight` -> `lm_head.weight`).
std::string keyOfPeftName(std::string name) {
  auto erase = [&](const std::string &what, const std::string &with) {
    size_t at = name.find(what);
    if (at != std::string::npos)
      name.replace(at, what.size(), with);
  };
  erase(".lora_magnitude_vector.default.weight", ".lora_magnitude_vector");
  erase(".modules_to_save.default", "");
  erase(".default", "");
  return name;
}

double relative(double got, double want) {
  return std::abs(got - want) / std::max(std::abs(want), 1e-300);
}

/// Rows [first, first + count) of a [rows, ...] tensor.
Tensor rows(const Tensor &t, int64_t first, int64_t count) {
  Shape shape = t.shape();
  int64_t width = t.numel() / shape[0];
  shape[0] = count;
  Tensor out(t.dtype(), shape);
  for (int64_t i = 0; i < count * width; ++i) {
    if (isFloat(t.dtype()))
      out.setDouble(i, t.getDouble(first * width + i));
    else
      out.setInt(i, t.getInt(first * width + i));
  }
  return out;
}

struct Golden {
  llvm::json::Object json;
  std::string model;
  int64_t steps = 0;
  std::vector<double> losses, gradNorms, lrs;
  std::vector<std::vector<double>> microLosses;
  double finalLoss = 0;
};

std::vector<double> numbers(const llvm::json::Array *array) {
  std::vector<double> out;
  if (array)
    for (const llvm::json::Value &v : *array)
      out.push_back(v.getAsNumber().value_or(std::nan("")));
  return out;
}

bool readGolden(const std::string &caseName, Golden &g, std::string &error) {
  auto buffer =
      llvm::MemoryBuffer::getFile(goldenPath(caseName + "/losses.json"));
  if (!buffer) {
    error = "cannot read losses.json";
    return false;
  }
  llvm::Expected<llvm::json::Value> value =
      llvm::json::parse((*buffer)->getBuffer());
  if (!value || !value->getAsObject()) {
    error = "losses.json is not a JSON object";
    return false;
  }
  g.json = *value->getAsObject();
  g.model = g.json.getString("model").value_or("").str();
  g.steps = g.json.getInteger("steps").value_or(0);
  g.losses = numbers(g.json.getArray("losses"));
  g.gradNorms = numbers(g.json.getArray("grad_norms"));
  g.lrs = numbers(g.json.getArray("lrs"));
  g.finalLoss = g.json.getNumber("final_loss").value_or(std::nan(""));
  if (const llvm::json::Array *micro = g.json.getArray("micro_batch_losses"))
    for (const llvm::json::Value &step : *micro)
      g.microLosses.push_back(numbers(step.getAsArray()));
  if (g.steps < 1 || (int64_t)g.losses.size() != g.steps ||
      (int64_t)g.gradNorms.size() != g.steps ||
      (int64_t)g.lrs.size() != g.steps) {
    error = "losses.json lacks steps/losses/grad_norms/lrs";
    return false;
  }
  return true;
}

class GoldenParity : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenParity, ReferenceEvaluatorMatchesPeft) {
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
  registry.insert<func::FuncDialect, nn::NNDialect, pir::PeftDialect>();
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  ctx.printOpOnDiagnostic(false);
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return success();
  });

  // As peftc does it: import with the spec's shapes, attach the spec.
  onnx_import::ImportOptions options;
  for (const spec::InputShape &input : spec.training.inputs)
    options.dataShapes[input.name] = input.dims;
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
  insert.initAdapter = goldenPath(caseName + "/initial_adapter");
  pm.addPass(createInsertAdapters(insert));
  pm.addPass(createFreezeParams());
  pm.addPass(createBuildLoss());
  pm.addPass(createDifferentiateTrainable());
  pm.addPass(createOptimizer());
  ASSERT_TRUE(succeeded(pm.run(*module))) << diagnostics;
  ASSERT_TRUE(succeeded(verify(*module))) << diagnostics;

  ref::Evaluator eval(*module, {/*promoteToF64=*/true});
  ASSERT_TRUE(succeeded(adapters::initializeParams(
      *module, spec.training.seed,
      [&](StringRef name) { return eval.paramValue(name); },
      [&](StringRef name, const Tensor &value) {
        return eval.setParam(name, value);
      })))
      << diagnostics;

  SafeTensorsFile data;
  ASSERT_TRUE(
      readSafeTensors(goldenPath(caseName + "/data.safetensors"), data, error))
      << error;
  int64_t batch = spec.training.batchSize.value_or(2);
  int64_t accumulation = spec.training.gradientAccumulationSteps;
  auto step = module->lookupSymbol<func::FuncOp>("train_step");
  auto lossFn = module->lookupSymbol<func::FuncOp>("loss");
  ASSERT_TRUE(step && lossFn);

  // The inputs of `fn` for micro-batch `micro`, by argument name.
  auto inputsOf = [&](func::FuncOp fn, int64_t micro, int64_t stepNumber,
                      std::vector<Tensor> &inputs) -> bool {
    inputs.clear();
    for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
      if (fn.getArgAttr(i, "peft.step")) {
        Tensor t(DType::I64, {});
        t.setInt(0, stepNumber);
        inputs.push_back(t);
        continue;
      }
      auto name = fn.getArgAttrOfType<StringAttr>(i, "nn.name");
      const Tensor *all = name ? data.find(name.str()) : nullptr;
      if (!all) {
        ADD_FAILURE() << "no data for argument " << i << " of @"
                      << fn.getSymName().str();
        return false;
      }
      inputs.push_back(rows(*all, micro * batch, batch));
    }
    return true;
  };

  std::vector<Tensor> inputs;
  // The worst relative errors, reported at the end.
  double lossErr = 0, normErr = 0, tensorErr = 0;
  for (int64_t s = 1; s <= golden.steps; ++s) {
    double loss = 0, gradNorm = 0, lr = 0;
    if (accumulation == 1) {
      ASSERT_TRUE(inputsOf(step, 0, s, inputs));
      auto out = eval.run(inputs, "train_step");
      ASSERT_TRUE(succeeded(out)) << diagnostics;
      ASSERT_EQ(out->size(), 3u);
      loss = (*out)[0].getDouble(0);
      gradNorm = (*out)[1].getDouble(0);
      lr = (*out)[2].getDouble(0);
    } else {
      auto update = module->lookupSymbol<func::FuncOp>("apply_update");
      ASSERT_TRUE(update);
      std::vector<Tensor> sums;
      for (int64_t micro = 0; micro < accumulation; ++micro) {
        ASSERT_TRUE(inputsOf(step, micro, s, inputs));
        auto out = eval.run(inputs, "train_step");
        ASSERT_TRUE(succeeded(out)) << diagnostics;
        double microLoss = (*out)[0].getDouble(0);
        loss += microLoss / accumulation;
        if ((int64_t)golden.microLosses.size() >= s &&
            (int64_t)golden.microLosses[s - 1].size() > micro)
          EXPECT_LT(relative(microLoss, golden.microLosses[s - 1][micro]), 1e-9)
              << caseName << " step " << s << " micro-batch " << micro;
        for (size_t g = 1; g < out->size(); ++g) {
          if (sums.size() < g)
            sums.push_back(Tensor(DType::F64, (*out)[g].shape()));
          for (int64_t i = 0; i < (*out)[g].numel(); ++i)
            sums[g - 1].setDouble(i, sums[g - 1].getDouble(i) +
                                         (*out)[g].getDouble(i));
        }
      }
      std::vector<Tensor> args{Tensor(DType::I64, {})};
      args[0].setInt(0, s);
      args.insert(args.end(), sums.begin(), sums.end());
      auto out = eval.run(args, "apply_update");
      ASSERT_TRUE(succeeded(out)) << diagnostics;
      gradNorm = (*out)[0].getDouble(0);
      lr = (*out)[1].getDouble(0);
    }
    lossErr = std::max(lossErr, relative(loss, golden.losses[s - 1]));
    normErr = std::max(normErr, relative(gradNorm, golden.gradNorms[s - 1]));
    EXPECT_LT(relative(loss, golden.losses[s - 1]), 1e-9)
        << caseName << " step " << s << ": loss " << loss << " vs "
        << golden.losses[s - 1];
    EXPECT_LT(relative(gradNorm, golden.gradNorms[s - 1]), 1e-9)
        << caseName << " step " << s << ": grad norm " << gradNorm << " vs "
        << golden.gradNorms[s - 1];
    EXPECT_NEAR(lr, golden.lrs[s - 1], 1e-15 * std::abs(golden.lrs[s - 1]))
        << caseName << " step " << s;
  }

  // The loss at the trained weights.
  double finalLoss = 0;
  for (int64_t micro = 0; micro < accumulation; ++micro) {
    ASSERT_TRUE(inputsOf(lossFn, micro, 0, inputs));
    auto out = eval.run(inputs, "loss");
    ASSERT_TRUE(succeeded(out)) << diagnostics;
    finalLoss += (*out)[0].getDouble(0) / accumulation;
  }
  lossErr = std::max(lossErr, relative(finalLoss, golden.finalLoss));
  EXPECT_LT(relative(finalLoss, golden.finalLoss), 1e-9)
      << caseName << ": final loss " << finalLoss << " vs " << golden.finalLoss;
  EXPECT_GT(golden.losses.front() - golden.finalLoss,
            0.1 * golden.losses.front())
      << caseName << ": the golden's loss does not fall by 10%";

  // Every trained tensor, by the key PEFT saves it under.
  SafeTensorsFile trained;
  ASSERT_TRUE(readSafeTensors(
      goldenPath(caseName + "/final_trainable.safetensors"), trained, error))
      << error;
  std::map<std::string, const Tensor *> wanted;
  for (const auto &[name, tensor] : trained.tensors)
    wanted[keyOfPeftName(name)] = &tensor;
  size_t matched = 0;
  for (auto param : module->getOps<pir::ParamOp>()) {
    if (!param.getTrainable())
      continue;
    auto key = param->getAttrOfType<StringAttr>(analysis::attr::kKey);
    ASSERT_TRUE(key) << "trainable @" << param.getSymName().str()
                     << " has no peft.key";
    auto it = wanted.find(key.str());
    ASSERT_NE(it, wanted.end())
        << caseName << ": the golden has no trained tensor " << key.str();
    FailureOr<Tensor> got = eval.paramValue(param.getSymName());
    ASSERT_TRUE(succeeded(got)) << diagnostics;
    const Tensor &want = *it->second;
    ASSERT_EQ(got->numel(), want.numel()) << key.str();
    bool transposed = param->hasAttr(analysis::attr::kKeyTransposed);
    int64_t cols = got->rank() == 2 ? got->shape()[1] : 1;
    int64_t rowsOfGot = got->rank() == 2 ? got->shape()[0] : got->numel();
    double diff = 0, ref = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      // want[i] under the transpose is got[(i % rows) * cols + i / rows].
      int64_t j = transposed ? (i % rowsOfGot) * cols + i / rowsOfGot : i;
      diff += std::pow(got->getDouble(j) - want.getDouble(i), 2);
      ref += want.getDouble(i) * want.getDouble(i);
    }
    tensorErr = std::max(tensorErr, std::sqrt(diff / ref));
    EXPECT_LT(std::sqrt(diff / ref), 1e-9)
        << caseName << ": " << key.str() << " differs from the golden";
    ++matched;
  }
  EXPECT_EQ(matched, trained.tensors.size())
      << caseName << ": some golden tensors were not trained";
  std::printf("%s: %lld steps, accumulation %lld; worst relative error: "
              "loss %.1e, grad norm %.1e, trained tensors %.1e (%zu)\n",
              caseName.c_str(), (long long)golden.steps,
              (long long)accumulation, lossErr, normErr, tensorErr, matched);
}

INSTANTIATE_TEST_SUITE_P(Goldens, GoldenParity,
                         ::testing::Values("lora_llama_qv", "lora_llama_layers",
                                           "rslora_llama", "dora_llama_qv",
                                           "ia3_llama", "lora_gpt2_cattn",
                                           "lora_bitfit_head",
                                           "lora_llama_trainer"),
                         [](const ::testing::TestParamInfo<std::string> &info) {
                           return info.param;
                         });

} // namespace
