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
#include "frontends/spec/AdapterConfig.h"
#include "frontends/spec/PeftSpec.h"
#include "frontends/spec/TargetResolution.h"
#include "passes/AdapterSave.h"
#include "passes/analysis/ModuleNames.h"
#include "peft/SafeTensors.h"

#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <set>

using namespace mlir;
using namespace peft;
using namespace peft::golden;

namespace {

class GoldenParity : public ::testing::TestWithParam<std::string> {};

/// The case's final_adapter/adapter_config.json as JSON.
llvm::Expected<llvm::json::Value> peftConfigJson(const std::string &caseName) {
  auto buffer = llvm::MemoryBuffer::getFile(
      goldenPath(caseName + "/final_adapter/adapter_config.json"));
  if (!buffer)
    return llvm::createStringError(buffer.getError(),
                                   "cannot read adapter_config.json");
  return llvm::json::parse((*buffer)->getBuffer());
}

/// The case's final_adapter/adapter_config.json read as a spec: PEFT's
/// config of its one method.
bool readPeftConfig(const std::string &caseName, spec::PeftSpec &peftSpec,
                    std::string &error) {
  if (!spec::parseSpecFile(
          goldenPath(caseName + "/final_adapter/adapter_config.json"), peftSpec,
          error))
    return false;
  if (peftSpec.methods.size() != 1) {
    error = caseName + ": adapter_config.json has " +
            std::to_string(peftSpec.methods.size()) + " methods";
    return false;
  }
  return true;
}

TEST_P(GoldenParity, ReferenceEvaluatorMatchesPeft) {
  const std::string caseName = GetParam();
  Golden golden;
  spec::PeftSpec spec;
  std::string error;
  ASSERT_TRUE(readCase(caseName, golden, spec, error)) << error;

  PipelineContext pipeline;
  MLIRContext &ctx = pipeline.ctx;
  const std::string &diagnostics = pipeline.diagnostics;
  // As peftc does it: import with the spec's shapes, attach the spec.
  OwningOpRef<ModuleOp> module =
      importCase(ctx, spec, goldenPath(caseName + "/" + golden.model));
  ASSERT_TRUE(module) << diagnostics;
  // The model's modules, for the saved adapter_config.json (below).
  std::vector<spec::ModuleInfo> modules;
  {
    FailureOr<analysis::ModuleTable> table =
        analysis::ModuleTable::build(*module);
    ASSERT_TRUE(succeeded(table)) << diagnostics;
    modules = table->moduleInfos();
  }

  // ReFT cases (generate_reft.py) start from pyreft's interventions, the
  // others from PEFT's initial adapter.
  CaseStart start = caseStart(caseName);
  bool reft = start.reft, projectedPrefix = start.projectedPrefix;
  PassManager pm(&ctx);
  addTrainingPasses(pm, start);
  ASSERT_TRUE(succeeded(pm.run(*module))) << diagnostics;
  std::unique_ptr<ref::Evaluator> evaluator =
      startEvaluator(*module, spec.training.seed);
  ASSERT_TRUE(evaluator) << diagnostics;
  ref::Evaluator &eval = *evaluator;

  SafeTensorsFile data;
  ASSERT_TRUE(readCaseData(caseName, data, error)) << error;
  int64_t batch = spec.training.batchSize.value_or(2);
  int64_t accumulation = spec.training.gradientAccumulationSteps;
  auto step = module->lookupSymbol<func::FuncOp>("train_step");
  auto lossFn = module->lookupSymbol<func::FuncOp>("loss");
  ASSERT_TRUE(step && lossFn);

  // The inputs of `fn` for micro-batch `micro`, by argument name.
  auto inputsOf = [&](func::FuncOp fn, int64_t micro, int64_t stepNumber,
                      std::vector<Tensor> &inputs) -> bool {
    if (stepInputs(fn, data, micro, batch, stepNumber, inputs, error))
      return true;
    ADD_FAILURE() << error;
    return false;
  };

  std::vector<Tensor> inputs;
  // The worst relative errors, reported at the end.
  double lossErr = 0, normErr = 0;
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
  TrainedTensors trained;
  ASSERT_TRUE(readTrained(caseName, projectedPrefix, trained, error)) << error;
  TrainedComparison compared;
  ASSERT_TRUE(
      compareTrainedOnEvaluator(*module, eval, trained, compared, error))
      << caseName << ": " << error << "\n"
      << diagnostics;
  double tensorErr = compared.worst;
  size_t matched = compared.matched;
  EXPECT_LT(tensorErr, 1e-9)
      << caseName << ": " << compared.worstKey << " differs from the golden";
  EXPECT_EQ(matched, trained.file.tensors.size())
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
  // PEFT saves a projected prefix as its encoder's output, which
  // @prefix_prompt_embeddings computes.
  if (projectedPrefix) {
    auto encoded = eval.run({}, "prefix_prompt_embeddings");
    ASSERT_TRUE(succeeded(encoded) && encoded->size() == 1u) << diagnostics;
    saved->clear();
    saved->emplace_back("prompt_embeddings", (*encoded)[0]);
  }
  // PEFT 0.15 drops `bias: lora_only` biases from the file
  // (huggingface/peft#3306: it looks for `<module>.bias` where the wrapped
  // layer has `<module>.base_layer.bias`); peftc saves them, so the adapter
  // loads in PEFT with the trained bias (docs/spec.md, "Saved adapters").
  std::set<std::string> beyondPeft;
  for (const spec::MethodSpec &method : spec.methods)
    if (method.lora() && method.lora()->bias == spec::LoraBias::LoraOnly)
      for (const auto &[name, tensor] : trained.file.tensors)
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
  auto report = [&] {
    std::printf("%s: %lld steps, accumulation %lld; worst relative error: "
                "loss %.1e, grad norm %.1e, trained tensors %.1e (%zu), saved "
                "adapter %.1e (%zu tensors)\n",
                caseName.c_str(), (long long)golden.steps,
                (long long)accumulation, lossErr, normErr, tensorErr, matched,
                fileErr, peftAdapter.tensors.size());
  };

  // PEFT's PROMPT_TUNING adapter_config.json is a spec as it stands.
  if (const spec::PromptTuningConfig *prompt =
          spec.methods.front().promptTuning()) {
    spec::PeftSpec peftSpec;
    ASSERT_TRUE(readPeftConfig(caseName, peftSpec, error)) << error;
    ASSERT_TRUE(peftSpec.methods[0].promptTuning());
    EXPECT_EQ(peftSpec.methods[0].promptTuning()->numVirtualTokens,
              prompt->numVirtualTokens);
  }
  // So is its PREFIX_TUNING one, with the fields PEFT fills from the model.
  if (const spec::PrefixTuningConfig *prefix =
          spec.methods.front().prefixTuning()) {
    spec::PeftSpec peftSpec;
    ASSERT_TRUE(readPeftConfig(caseName, peftSpec, error)) << error;
    const spec::PrefixTuningConfig *peft = peftSpec.methods[0].prefixTuning();
    ASSERT_TRUE(peft);
    EXPECT_EQ(peft->numVirtualTokens, prefix->numVirtualTokens);
    EXPECT_EQ(peft->prefixProjection, prefix->prefixProjection);
    const llvm::json::Object *info = golden.json.getObject("prefix");
    ASSERT_TRUE(info) << caseName << ": losses.json has no 'prefix'";
    EXPECT_EQ(peft->tokenDim, info->getInteger("token_dim"));
    EXPECT_EQ(peft->numLayers, info->getInteger("num_layers"));
    EXPECT_EQ(peft->numAttentionHeads, info->getInteger("num_attention_heads"));
    EXPECT_EQ(peft->encoderHiddenSize, info->getInteger("encoder_hidden_size"));
    // peft-insert-prefix-tuning fills the spec from the model as PEFT does,
    // and the adapter_config.json written from it is PEFT's, field for
    // field (a projected prefix's too: its saved tensor is the encoder's
    // output, as PEFT's).
    FailureOr<spec::PeftSpec> filled = analysis::readSpecAttr(*module, "test");
    ASSERT_TRUE(succeeded(filled)) << diagnostics;
    std::string configText = spec::adapterConfigJson(*filled, nullptr, error);
    ASSERT_FALSE(configText.empty()) << error;
    llvm::Expected<llvm::json::Value> want = peftConfigJson(caseName);
    llvm::Expected<llvm::json::Value> got = llvm::json::parse(configText);
    ASSERT_TRUE(bool(want) && bool(got)) << configText;
    EXPECT_EQ(*got, *want) << configText;
  }
  report();
  // adapterConfigJson writes the LoRA family's adapter_config.json; the
  // methods placed by structure are compared above.
  // SPARSE has no PEFT config: peftc writes its own (docs/adapters.md),
  // which reads back as a spec choosing the same entries of the same
  // modules.
  if (const spec::SparseConfig *sparse = spec.methods.front().sparse()) {
    spec::ResolvedTargets resolved, rereadResolved;
    ASSERT_TRUE(spec::resolveTargets(spec, modules, resolved, error)) << error;
    std::string configText = spec::adapterConfigJson(spec, &resolved, error);
    ASSERT_FALSE(configText.empty()) << error;
    spec::PeftSpec reread;
    ASSERT_TRUE(
        spec::parseSpecString(configText, "adapter_config.json", reread, error))
        << error;
    ASSERT_EQ(reread.methods.size(), 1u);
    const spec::SparseConfig *again = reread.methods[0].sparse();
    ASSERT_TRUE(again) << configText;
    EXPECT_EQ(again->density, sparse->density);
    EXPECT_EQ(again->selection, sparse->selection);
    EXPECT_EQ(again->seed, sparse->seed);
    ASSERT_TRUE(spec::resolveTargets(reread, modules, rereadResolved, error))
        << error;
    auto paths = [](const spec::ResolvedTargets &r) {
      std::vector<std::string> out;
      for (const spec::AdapterTarget &t : r.methods.at(0).adapters)
        out.push_back(t.path);
      return out;
    };
    EXPECT_EQ(paths(rereadResolved), paths(resolved)) << configText;
    EXPECT_EQ(paths(resolved).size(), 14u);
    return;
  }
  if (adaptersLibrary || spec.methods.front().promptTuning() ||
      spec.methods.front().prefixTuning())
    return;

  // adapter_config.json: PEFT's fields and values (target lists compared
  // as sets: PEFT saves a Python set), and it reads back as a spec that
  // adapts, trains and saves the same modules.
  spec::ResolvedTargets resolved;
  ASSERT_TRUE(spec::resolveTargets(spec, modules, resolved, error)) << error;
  std::string configText = spec::adapterConfigJson(spec, &resolved, error);
  ASSERT_FALSE(configText.empty()) << error;
  llvm::Expected<llvm::json::Value> peftConfig = peftConfigJson(caseName);
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
  ASSERT_TRUE(
      spec::parseSpecString(configText, "adapter_config.json", reread, error))
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

  report();
}

INSTANTIATE_TEST_SUITE_P(
    Goldens, GoldenParity,
    ::testing::Values("lora_llama_qv", "lora_llama_layers", "rslora_llama",
                      "dora_llama_qv", "ia3_llama", "lora_gpt2_cattn",
                      "lora_bitfit_head", "lora_llama_trainer",
                      "prompt_tuning_llama", "prefix_tuning_llama",
                      "prefix_tuning_proj_llama", "prefix_tuning_gpt2",
                      "seq_bn_llama", "double_seq_bn_llama", "par_bn_llama",
                      "loreft_llama", "nodireft_llama", "direft_llama",
                      "sparse_llama"),
    [](const ::testing::TestParamInfo<std::string> &info) {
      return info.param;
    });

} // namespace
