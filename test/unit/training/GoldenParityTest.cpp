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
#include "GoldenCase.h"

#include "codegen/reference/Evaluator.h"
#include "frontends/onnx/Importer.h"
#include "frontends/spec/AdapterConfig.h"
#include "frontends/spec/PeftSpec.h"
#include "frontends/spec/TargetResolution.h"
#include "passes/AdapterInit.h"
#include "passes/AdapterSave.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"
#include "peft/SafeTensors.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <set>

using namespace mlir;
using namespace peft;
using namespace peft::golden;

namespace {

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
  // The model's modules, for the saved adapter_config.json (below).
  std::vector<spec::ModuleInfo> modules;
  {
    FailureOr<analysis::ModuleTable> table =
        analysis::ModuleTable::build(*module);
    ASSERT_TRUE(succeeded(table)) << diagnostics;
    modules = table->moduleInfos();
  }

  PassManager pm(&ctx);
  InsertAdaptersOptions insert;
  // ReFT cases (generate_reft.py) start from pyreft's interventions, the
  // others from PEFT's initial adapter.
  std::string interventions =
      goldenPath(caseName + "/initial_interventions.safetensors");
  bool reft = llvm::sys::fs::exists(interventions);
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

  // pyreft saves interventions in its own layout (no PEFT final_adapter);
  // their trained tensors were compared above.
  if (reft) {
    std::printf("%s: %lld steps; worst relative error: loss %.1e, grad norm "
                "%.1e, trained tensors %.1e (%zu)\n",
                caseName.c_str(), (long long)golden.steps, lossErr, normErr,
                tensorErr, matched);
    return;
  }

  // The adapter as PEFT saves it: the keys (and shapes, in PEFT's layout)
  // of final_adapter/adapter_model.safetensors, with our trained values.
  // Bottleneck cases were saved by the adapters library (adapter.safetensors,
  // its parameter names as keys), the others by PEFT.
  bool adaptersLibrary = llvm::any_of(spec.methods, [](const auto &method) {
    return method.bottleneck() != nullptr;
  });
  SafeTensorsFile peftAdapter;
  ASSERT_TRUE(readSafeTensors(
      goldenPath(caseName + (adaptersLibrary
                                 ? "/final_adapter/adapter.safetensors"
                                 : "/final_adapter/adapter_model.safetensors")),
      peftAdapter, error))
      << error;
  auto saved = adapters::adapterTensors(
      *module, [&](StringRef name) { return eval.paramValue(name); });
  ASSERT_TRUE(succeeded(saved)) << diagnostics;
  // PEFT 0.15 drops `bias: lora_only` biases from the file
  // (huggingface/peft#3306: it looks for `<module>.bias` where the wrapped
  // layer has `<module>.base_layer.bias`); peftc saves them, so the adapter
  // loads in PEFT with the trained bias (docs/spec.md, "Saved adapters").
  std::set<std::string> beyondPeft;
  for (const spec::MethodSpec &method : spec.methods)
    if (method.lora() && method.lora()->bias == spec::LoraBias::LoraOnly)
      for (const auto &[name, tensor] : trained.tensors)
        if (llvm::StringRef(name).ends_with(".base_layer.bias"))
          beyondPeft.insert(keyOfPeftName(name));
  std::map<std::string, Shape> ourKeys, peftKeys;
  for (const auto &[key, tensor] : *saved)
    if (!beyondPeft.count(key))
      ourKeys[key] = tensor.shape();
  for (const auto &[key, tensor] : peftAdapter.tensors)
    peftKeys[key] = tensor.shape();
  EXPECT_EQ(ourKeys, peftKeys)
      << caseName << ": the saved keys or shapes differ from PEFT's";
  std::string savedPath =
      ::testing::TempDir() + "/" + caseName + "_adapter_model.safetensors";
  ASSERT_TRUE(writeSafeTensors(savedPath, *saved, {}, error)) << error;
  SafeTensorsFile ours;
  ASSERT_TRUE(readSafeTensors(savedPath, ours, error)) << error;
  double fileErr = 0;
  for (const auto &[key, want] : peftAdapter.tensors) {
    const Tensor *got = ours.find(key);
    ASSERT_TRUE(got) << caseName << ": the saved adapter lacks " << key;
    ASSERT_EQ(got->shape(), want.shape()) << key;
    EXPECT_EQ(got->dtype(), want.dtype()) << key;
    double diff = 0, ref = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      diff += std::pow(got->getDouble(i) - want.getDouble(i), 2);
      ref += want.getDouble(i) * want.getDouble(i);
    }
    double err = std::sqrt(diff / std::max(ref, 1e-300));
    fileErr = std::max(fileErr, err);
    EXPECT_LT(err, 1e-9) << caseName << ": saved " << key
                         << " differs from final_adapter's";
  }
  std::remove(savedPath.c_str());

  // PEFT's PROMPT_TUNING adapter_config.json is a spec as it stands.
  if (const spec::PromptTuningConfig *prompt =
          spec.methods.front().promptTuning()) {
    spec::PeftSpec peftSpec;
    ASSERT_TRUE(spec::parseSpecFile(
        goldenPath(caseName + "/final_adapter/adapter_config.json"), peftSpec,
        error))
        << error;
    ASSERT_EQ(peftSpec.methods.size(), 1u);
    ASSERT_TRUE(peftSpec.methods[0].promptTuning());
    EXPECT_EQ(peftSpec.methods[0].promptTuning()->numVirtualTokens,
              prompt->numVirtualTokens);
  }
  std::printf("%s: %lld steps, accumulation %lld; worst relative error: "
              "loss %.1e, grad norm %.1e, trained tensors %.1e (%zu), saved "
              "adapter %.1e (%zu tensors)\n",
              caseName.c_str(), (long long)golden.steps,
              (long long)accumulation, lossErr, normErr, tensorErr, matched,
              fileErr, peftAdapter.tensors.size());
  // adapterConfigJson writes the LoRA family's adapter_config.json; the
  // methods placed by structure are compared above.
  if (adaptersLibrary || spec.methods.front().promptTuning())
    return;

  // adapter_config.json: PEFT's fields and values (target lists compared
  // as sets: PEFT saves a Python set), and it reads back as a spec that
  // adapts, trains and saves the same modules.
  spec::ResolvedTargets resolved;
  ASSERT_TRUE(spec::resolveTargets(spec, modules, resolved, error)) << error;
  std::string configText = spec::adapterConfigJson(spec, &resolved, error);
  ASSERT_FALSE(configText.empty()) << error;
  auto peftConfigBuffer = llvm::MemoryBuffer::getFile(
      goldenPath(caseName + "/final_adapter/adapter_config.json"));
  ASSERT_TRUE(peftConfigBuffer);
  llvm::Expected<llvm::json::Value> peftConfig =
      llvm::json::parse((*peftConfigBuffer)->getBuffer());
  llvm::Expected<llvm::json::Value> ourConfig = llvm::json::parse(configText);
  ASSERT_TRUE(bool(peftConfig) && bool(ourConfig)) << configText;
  const llvm::json::Object &want = *peftConfig->getAsObject();
  const llvm::json::Object &got = *ourConfig->getAsObject();
  auto asSet = [](const llvm::json::Value *v) {
    std::set<std::string> out;
    if (const llvm::json::Array *array = v ? v->getAsArray() : nullptr)
      for (const llvm::json::Value &item : *array)
        out.insert(item.getAsString().value_or("").str());
    return out;
  };
  std::set<std::string> wantKeys, gotKeys;
  for (const auto &entry : want)
    wantKeys.insert(entry.first.str());
  for (const auto &entry : got)
    gotKeys.insert(entry.first.str());
  EXPECT_EQ(gotKeys, wantKeys) << caseName << ": adapter_config.json fields";
  for (const auto &entry : want) {
    llvm::StringRef key = entry.first;
    const llvm::json::Value *ourValue = got.get(key);
    if (!ourValue)
      continue;
    if (key == "target_modules" || key == "feedforward_modules" ||
        key == "modules_to_save")
      EXPECT_EQ(asSet(ourValue), asSet(&entry.second))
          << caseName << ": adapter_config.json " << key.str();
    else
      EXPECT_EQ(*ourValue, entry.second)
          << caseName << ": adapter_config.json " << key.str() << " is "
          << llvm::formatv("{0}", *ourValue).str() << ", PEFT wrote "
          << llvm::formatv("{0}", entry.second).str();
  }
  spec::PeftSpec reread;
  ASSERT_TRUE(spec::parseSpecString(configText, "adapter_config.json", reread,
                                    error))
      << error;
  spec::ResolvedTargets rereadResolved;
  ASSERT_TRUE(spec::resolveTargets(reread, modules, rereadResolved, error))
      << error;
  auto summary = [](const spec::ResolvedTargets &r) {
    std::set<std::string> out;
    for (const spec::ResolvedMethod &m : r.methods) {
      for (const spec::AdapterTarget &t : m.adapters)
        out.insert(llvm::formatv("adapter {0} r={1} scale={2} ff={3}", t.path,
                                 t.rank, t.scale, t.feedforward)
                       .str());
      for (const std::string &b : m.trainableBiases)
        out.insert("bias " + b);
      for (const std::string &path : m.trainableModules)
        out.insert("module " + path);
    }
    return out;
  };
  EXPECT_EQ(summary(rereadResolved), summary(resolved))
      << caseName << ": adapter_config.json reads back as another spec:\n"
      << configText;

  std::printf("%s: %lld steps, accumulation %lld; worst relative error: "
              "loss %.1e, grad norm %.1e, trained tensors %.1e (%zu), saved "
              "adapter %.1e (%zu tensors)\n",
              caseName.c_str(), (long long)golden.steps,
              (long long)accumulation, lossErr, normErr, tensorErr, matched,
              fileErr, peftAdapter.tensors.size());
}

INSTANTIATE_TEST_SUITE_P(Goldens, GoldenParity,
                         ::testing::Values("lora_llama_qv", "lora_llama_layers",
                                           "rslora_llama", "dora_llama_qv",
                                           "ia3_llama", "lora_gpt2_cattn",
                                           "lora_bitfit_head",
                                           "lora_llama_trainer",
                                           "prompt_tuning_llama",
                                           "seq_bn_llama", "double_seq_bn_llama",
                                           "par_bn_llama", "loreft_llama",
                                           "nodireft_llama", "direft_llama"),
                         [](const ::testing::TestParamInfo<std::string> &info) {
                           return info.param;
                         });

} // namespace
