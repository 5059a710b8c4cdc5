//===- AdapterConfig.cpp - the adapter_config.json PEFT writes ------------===//
//
// Field names, defaults and value types are PEFT 0.15.2's (LoraConfig and
// IA3Config as `PeftConfig.save_pretrained` serialises them); the goldens'
// final_adapter/adapter_config.json are PEFT's own output and the tests
// compare against them.
//
//===----------------------------------------------------------------------===//
#include "frontends/spec/AdapterConfig.h"
#include "frontends/spec/JsonWriter.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>

using namespace llvm;

namespace peft::spec {
namespace {

/// Python writes a float field with a fractional part (0.0, not 0).
void writeFloat(json::OStream &out, double value) {
  std::string text = formatJsonNumber(value);
  if (std::isfinite(value) && text.find_first_of(".eE") == std::string::npos)
    text += ".0";
  out.rawValue(text);
}

/// Fields PEFT types `int | float` (lora_alpha, alpha_pattern values) keep
/// the type the user wrote; the spec stores a double, so an integral value
/// is written as an int, as a config written by hand usually has it.
void writeIntOrFloat(json::OStream &out, double value) {
  if (std::isfinite(value) && value == std::floor(value) &&
      std::abs(value) < 9.0e15)
    out.value(static_cast<int64_t>(value));
  else
    writeNumber(out, value);
}

void writeNames(json::OStream &out, const std::vector<std::string> &names) {
  if (names.empty()) {
    out.value(nullptr);
    return;
  }
  out.array([&] {
    for (const std::string &name : names)
      out.value(name);
  });
}

/// A module selector as PEFT saves it; all-linear as the paths it matched
/// (`adapted`), when known.
void writeSelector(json::OStream &out, const ModuleSelector &selector,
                   const std::vector<std::string> *adapted) {
  switch (selector.kind) {
  case ModuleSelector::Kind::Unset:
    out.value(nullptr);
    return;
  case ModuleSelector::Kind::AllLinear:
    if (adapted)
      writeNames(out, *adapted);
    else
      out.value("all-linear");
    return;
  case ModuleSelector::Kind::Regex:
    out.value(selector.regex);
    return;
  case ModuleSelector::Kind::Names: {
    std::vector<std::string> names;
    for (const auto &name : selector.names)
      names.push_back(name.value);
    writeNames(out, names);
    return;
  }
  }
}

void writePatterns(json::OStream &out, const std::vector<PatternEntry> &p,
                   bool isRank) {
  out.object([&] {
    for (const PatternEntry &entry : p) {
      out.attributeBegin(entry.pattern);
      if (isRank)
        out.value(static_cast<int64_t>(entry.value));
      else
        writeIntOrFloat(out, entry.value);
      out.attributeEnd();
    }
  });
}

/// peftc's own config for a SPARSE method (PEFT has none): the method's
/// fields with `peft_type: SPARSE`, in the same form, so the saved adapter
/// says how its indices were chosen and reads back as the spec.
std::string sparseConfigJson(const PeftSpec &spec, const MethodSpec &method,
                             const ResolvedTargets *resolved,
                             const AdapterConfigOptions &options) {
  const SparseConfig &sparse = *method.sparse();
  std::vector<std::string> adapted;
  bool haveAdapted = false;
  if (resolved)
    for (const ResolvedMethod &m : resolved->methods)
      if (m.kind == MethodKind::Sparse) {
        haveAdapted = true;
        for (const AdapterTarget &target : m.adapters)
          adapted.push_back(target.path);
      }
  std::string text;
  raw_string_ostream os(text);
  json::OStream out(os, 2);
  out.object([&] {
    out.attribute("base_model_name_or_path", options.baseModelNameOrPath);
    out.attributeBegin("density");
    writeFloat(out, sparse.density);
    out.attributeEnd();
    out.attributeBegin("exclude_modules");
    writeSelector(out, sparse.excludeModules, nullptr);
    out.attributeEnd();
    out.attribute("inference_mode", true);
    out.attribute("peft_type", "SPARSE");
    out.attribute("seed", sparse.seed);
    out.attribute("selection", sparse.selection == SparseSelection::Magnitude
                                   ? "magnitude"
                                   : "random");
    out.attributeBegin("target_modules");
    writeSelector(out, sparse.targetModules, haveAdapted ? &adapted : nullptr);
    out.attributeEnd();
    if (options.taskType)
      out.attribute("task_type", *options.taskType);
    else if (spec.training.loss.kind == LossKind::CrossEntropy &&
             spec.training.loss.shift == LossShift::Causal)
      out.attribute("task_type", "CAUSAL_LM");
    else
      out.attribute("task_type", nullptr);
  });
  os.flush();
  return text;
}

/// PEFT 0.15's PrefixTuningConfig as save_pretrained writes it; the fields
/// PEFT fills from the model must be filled in the spec
/// (peft-insert-prefix-tuning does, on the model). With prefix_projection
/// the saved tensor is the encoder's output, as PEFT saves it (the program's
/// @prefix_prompt_embeddings computes it when the adapter is saved).
std::string prefixConfigJson(const PeftSpec &spec, const MethodSpec &method,
                             std::string &error,
                             const AdapterConfigOptions &options) {
  const PrefixTuningConfig &prefix = *method.prefixTuning();
  if (!prefix.tokenDim || !prefix.numLayers || !prefix.numAttentionHeads) {
    error = "error: PREFIX_TUNING's token_dim, num_layers and "
            "num_attention_heads come from the model; run "
            "peft-insert-prefix-tuning first";
    return "";
  }
  std::string text;
  raw_string_ostream os(text);
  json::OStream out(os, 2);
  out.object([&] {
    out.attribute("auto_mapping", nullptr);
    out.attribute("base_model_name_or_path", options.baseModelNameOrPath);
    out.attribute("encoder_hidden_size", prefix.encoderHiddenSize
                                             ? prefix.encoderHiddenSize
                                             : prefix.tokenDim);
    out.attribute("inference_mode", true);
    out.attribute("num_attention_heads", prefix.numAttentionHeads);
    out.attribute("num_layers", prefix.numLayers);
    out.attribute("num_transformer_submodules", 1);
    out.attribute("num_virtual_tokens", prefix.numVirtualTokens);
    out.attribute("peft_type", "PREFIX_TUNING");
    out.attribute("prefix_projection", prefix.prefixProjection);
    out.attribute("revision", nullptr);
    if (options.taskType)
      out.attribute("task_type", *options.taskType);
    else if (spec.training.loss.kind == LossKind::CrossEntropy &&
             spec.training.loss.shift == LossShift::Causal)
      out.attribute("task_type", "CAUSAL_LM");
    else
      out.attribute("task_type", nullptr);
    out.attribute("token_dim", prefix.tokenDim);
  });
  return text;
}

/// What the spec's methods add up to in PEFT's one config.
struct Combined {
  const MethodSpec *adapter = nullptr; // the LoRA/DoRA or IA3 method
  size_t adapterIndex = 0;
  bool allBiases = false; // BitFit on every bias
  std::vector<std::string> modulesToSave;
};

void addModules(Combined &c, const std::vector<Located<std::string>> &names) {
  for (const auto &name : names)
    if (std::find(c.modulesToSave.begin(), c.modulesToSave.end(), name.value) ==
        c.modulesToSave.end())
      c.modulesToSave.push_back(name.value);
}

bool combine(const PeftSpec &spec, Combined &c, std::string &error) {
  auto refuse = [&](const MethodSpec &method, const std::string &why) {
    error = (method.loc.isValid() ? method.loc.str() + ": " : std::string()) +
            "error: a " + methodName(method.kind).str() + " method " + why +
            "; PEFT's adapter_config.json cannot express it (docs/spec.md, "
            "\"Saved adapters\")";
    return false;
  };
  for (size_t i = 0; i < spec.methods.size(); ++i) {
    const MethodSpec &method = spec.methods[i];
    if (method.lora() || method.ia3()) {
      if (c.adapter)
        return refuse(method, "next to another LoRA/IA3 method");
      c.adapter = &method;
      c.adapterIndex = i;
      addModules(c, method.lora() ? method.lora()->modulesToSave
                                  : method.ia3()->modulesToSave);
    } else if (const BitFitConfig *bitfit = method.bitfit()) {
      if (!bitfit->allBiases)
        return refuse(method, "on named biases has no PEFT field");
      c.allBiases = true;
      addModules(c, bitfit->modulesToSave);
    } else {
      return refuse(method, "has no PEFT LoraConfig/IA3Config field");
    }
  }
  if (!c.adapter) {
    error = "error: the spec has no LoRA, DoRA or IA3 method; PEFT's "
            "adapter_config.json describes one of them (docs/spec.md, "
            "\"Saved adapters\")";
    return false;
  }
  if (c.allBiases && c.adapter->ia3()) {
    error = "error: BitFit composed with IA3: PEFT's IA3Config has no "
            "`bias` field";
    return false;
  }
  return true;
}

} // namespace

std::string adapterConfigJson(const PeftSpec &spec,
                              const ResolvedTargets *resolved,
                              std::string &error,
                              const AdapterConfigOptions &options) {
  if (spec.methods.size() == 1 && spec.methods.front().sparse())
    return sparseConfigJson(spec, spec.methods.front(), resolved, options);
  if (spec.methods.size() == 1 && spec.methods.front().prefixTuning())
    return prefixConfigJson(spec, spec.methods.front(), error, options);
  Combined c;
  if (!combine(spec, c, error))
    return "";
  // The paths an all-linear selector stands for.
  std::vector<std::string> adapted;
  bool haveAdapted = false;
  if (resolved)
    for (const ResolvedMethod &method : resolved->methods)
      if (method.methodIndex == c.adapterIndex) {
        haveAdapted = true;
        for (const AdapterTarget &target : method.adapters)
          adapted.push_back(target.path);
      }
  const std::vector<std::string> *adaptedPaths =
      haveAdapted ? &adapted : nullptr;
  std::string taskType;
  bool haveTask = true;
  if (options.taskType)
    taskType = *options.taskType;
  else if (spec.training.loss.kind == LossKind::CrossEntropy &&
           spec.training.loss.shift == LossShift::Causal)
    taskType = "CAUSAL_LM";
  else
    haveTask = false;

  std::string text;
  raw_string_ostream os(text);
  json::OStream out(os, 2);
  auto null = [&](StringRef key) { out.attribute(key, nullptr); };
  auto task = [&] {
    if (haveTask)
      out.attribute("task_type", taskType);
    else
      null("task_type");
  };
  // Keys in sorted order, as PEFT's json.dumps(sort_keys=True).
  out.object([&] {
    if (const LoraConfig *lora = c.adapter->lora()) {
      out.attributeBegin("alpha_pattern");
      writePatterns(out, lora->alphaPattern, /*isRank=*/false);
      out.attributeEnd();
      null("auto_mapping");
      out.attribute("base_model_name_or_path", options.baseModelNameOrPath);
      LoraBias bias = c.allBiases ? LoraBias::All : lora->bias;
      out.attribute("bias", bias == LoraBias::None  ? "none"
                            : bias == LoraBias::All ? "all"
                                                    : "lora_only");
      null("corda_config");
      null("eva_config");
      out.attributeBegin("exclude_modules");
      writeSelector(out, lora->excludeModules, nullptr);
      out.attributeEnd();
      out.attribute("fan_in_fan_out", lora->fanInFanOut);
      out.attribute("inference_mode", true);
      switch (lora->initLoraWeights) {
      case LoraInit::Default:
        out.attribute("init_lora_weights", true);
        break;
      case LoraInit::Gaussian:
        out.attribute("init_lora_weights", "gaussian");
        break;
      case LoraInit::Random:
        out.attribute("init_lora_weights", false);
        break;
      }
      null("layer_replication");
      out.attributeBegin("layers_pattern");
      if (lora->layersPattern.size() == 1)
        out.value(lora->layersPattern.front());
      else
        writeNames(out, lora->layersPattern);
      out.attributeEnd();
      out.attributeBegin("layers_to_transform");
      if (lora->layersToTransform.empty())
        out.value(nullptr);
      else
        out.array([&] {
          for (int64_t layer : lora->layersToTransform)
            out.value(layer);
        });
      out.attributeEnd();
      out.attributeObject("loftq_config", [] {});
      out.attributeBegin("lora_alpha");
      writeIntOrFloat(out, lora->loraAlpha);
      out.attributeEnd();
      out.attribute("lora_bias", false);
      out.attributeBegin("lora_dropout");
      writeFloat(out, lora->loraDropout);
      out.attributeEnd();
      null("megatron_config");
      out.attribute("megatron_core", "megatron.core");
      out.attributeBegin("modules_to_save");
      writeNames(out, c.modulesToSave);
      out.attributeEnd();
      out.attribute("peft_type", "LORA");
      out.attribute("r", lora->r);
      out.attributeBegin("rank_pattern");
      writePatterns(out, lora->rankPattern, /*isRank=*/true);
      out.attributeEnd();
      null("revision");
      out.attributeBegin("target_modules");
      writeSelector(out, lora->targetModules, adaptedPaths);
      out.attributeEnd();
      task();
      null("trainable_token_indices");
      out.attribute("use_dora", lora->useDora);
      out.attribute("use_rslora", lora->useRslora);
      return;
    }
    const IA3Config *ia3 = c.adapter->ia3();
    null("auto_mapping");
    out.attribute("base_model_name_or_path", options.baseModelNameOrPath);
    out.attributeBegin("exclude_modules");
    writeSelector(out, ia3->excludeModules, nullptr);
    out.attributeEnd();
    out.attribute("fan_in_fan_out", ia3->fanInFanOut);
    out.attributeBegin("feedforward_modules");
    writeSelector(out, ia3->feedforwardModules, nullptr);
    out.attributeEnd();
    out.attribute("inference_mode", true);
    out.attribute("init_ia3_weights", ia3->initIa3Weights);
    out.attributeBegin("modules_to_save");
    writeNames(out, c.modulesToSave);
    out.attributeEnd();
    out.attribute("peft_type", "IA3");
    null("revision");
    out.attributeBegin("target_modules");
    writeSelector(out, ia3->targetModules, adaptedPaths);
    out.attributeEnd();
    task();
  });
  os.flush();
  return text;
}

} // namespace peft::spec
