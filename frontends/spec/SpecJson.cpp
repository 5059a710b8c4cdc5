//===- SpecJson.cpp - PeftSpec -> JSON ------------------------------------===//
//
// Writes the list form with every default spelled out. The output is itself
// a valid spec: parseSpecString reads it back to the same PeftSpec, which is
// how the spec travels on the IR (the `peft.spec` module attribute).
//
//===----------------------------------------------------------------------===//
#include "frontends/spec/JsonWriter.h"
#include "frontends/spec/PeftSpec.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace llvm;

namespace peft::spec {

std::string formatJsonNumber(double value) {
  // The shortest text that reads back as the same double, so 1e-3 prints as
  // 0.001 rather than 0.0010000000000000000208.
  char text[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(text, sizeof(text), "%.*g", precision, value);
    if (std::strtod(text, nullptr) == value)
      break;
  }
  return text;
}

void writeNumber(json::OStream &out, double value) {
  out.rawValue(formatJsonNumber(value));
}

namespace {

void writeNumberAttribute(json::OStream &out, StringRef key, double value) {
  out.attributeBegin(key);
  writeNumber(out, value);
  out.attributeEnd();
}

void writeSelector(json::OStream &out, StringRef key,
                   const ModuleSelector &selector) {
  switch (selector.kind) {
  case ModuleSelector::Kind::Unset:
    out.attribute(key, nullptr);
    return;
  case ModuleSelector::Kind::AllLinear:
    out.attribute(key, "all-linear");
    return;
  case ModuleSelector::Kind::Regex:
    out.attribute(key, selector.regex);
    return;
  case ModuleSelector::Kind::Names:
    out.attributeArray(key, [&] {
      for (const auto &name : selector.names)
        out.value(name.value);
    });
    return;
  }
}

void writeNames(json::OStream &out, StringRef key,
                const std::vector<Located<std::string>> &names) {
  if (names.empty()) {
    out.attribute(key, nullptr);
    return;
  }
  out.attributeArray(key, [&] {
    for (const auto &name : names)
      out.value(name.value);
  });
}

void writePatterns(json::OStream &out, StringRef key,
                   const std::vector<PatternEntry> &patterns, bool isRank) {
  out.attributeObject(key, [&] {
    for (const PatternEntry &entry : patterns) {
      if (isRank)
        out.attribute(entry.pattern, static_cast<int64_t>(entry.value));
      else
        writeNumberAttribute(out, entry.pattern, entry.value);
    }
  });
}

void writeLora(json::OStream &out, const LoraConfig &lora) {
  out.attribute("r", lora.r);
  writeNumberAttribute(out, "lora_alpha", lora.loraAlpha);
  writeNumberAttribute(out, "lora_dropout", lora.loraDropout);
  writeSelector(out, "target_modules", lora.targetModules);
  writeSelector(out, "exclude_modules", lora.excludeModules);
  if (lora.layersToTransform.empty())
    out.attribute("layers_to_transform", nullptr);
  else
    out.attributeArray("layers_to_transform", [&] {
      for (int64_t layer : lora.layersToTransform)
        out.value(layer);
    });
  if (lora.layersPattern.empty())
    out.attribute("layers_pattern", nullptr);
  else
    out.attributeArray("layers_pattern", [&] {
      for (const std::string &pattern : lora.layersPattern)
        out.value(pattern);
    });
  writePatterns(out, "rank_pattern", lora.rankPattern, /*isRank=*/true);
  writePatterns(out, "alpha_pattern", lora.alphaPattern, /*isRank=*/false);
  out.attribute("bias", lora.bias == LoraBias::None  ? "none"
                        : lora.bias == LoraBias::All ? "all"
                                                     : "lora_only");
  out.attribute("use_rslora", lora.useRslora);
  out.attribute("use_dora", lora.useDora);
  switch (lora.initLoraWeights) {
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
  out.attribute("fan_in_fan_out", lora.fanInFanOut);
  writeNames(out, "modules_to_save", lora.modulesToSave);
}

void writeMethod(json::OStream &out, const MethodSpec &method) {
  out.object([&] {
    out.attribute("peft_type", methodName(method.kind));
    if (const LoraConfig *lora = method.lora()) {
      writeLora(out, *lora);
    } else if (const IA3Config *ia3 = method.ia3()) {
      writeSelector(out, "target_modules", ia3->targetModules);
      writeSelector(out, "exclude_modules", ia3->excludeModules);
      writeSelector(out, "feedforward_modules", ia3->feedforwardModules);
      out.attribute("fan_in_fan_out", ia3->fanInFanOut);
      out.attribute("init_ia3_weights", ia3->initIa3Weights);
      writeNames(out, "modules_to_save", ia3->modulesToSave);
    } else if (const BitFitConfig *bitfit = method.bitfit()) {
      if (bitfit->allBiases)
        out.attribute("biases", "all");
      else
        writeSelector(out, "biases", bitfit->biases);
      writeNames(out, "modules_to_save", bitfit->modulesToSave);
    } else if (const FreezeLayersConfig *layers = method.freezeLayers()) {
      if (layers->trainableLayers.empty())
        out.attribute("trainable_layers", nullptr);
      else
        out.attributeArray("trainable_layers", [&] {
          for (const auto &layer : layers->trainableLayers)
            out.value(layer.value);
        });
      if (layers->lastNLayers)
        out.attribute("last_n_layers", layers->lastNLayers->value);
      else
        out.attribute("last_n_layers", nullptr);
      writeNames(out, "modules_to_save", layers->modulesToSave);
    } else if (const ReftConfig *reft = method.reft()) {
      if (reft->allLayers)
        out.attribute("layers", "all");
      else
        out.attributeArray("layers", [&] {
          for (const auto &layer : reft->layers)
            out.value(layer.value);
        });
      std::string positions;
      if (reft->firstN)
        positions += "f" + std::to_string(reft->firstN);
      if (reft->firstN && reft->lastN)
        positions += "+";
      if (reft->lastN)
        positions += "l" + std::to_string(reft->lastN);
      out.attribute("positions", positions);
      out.attribute("low_rank_dimension", reft->lowRankDimension);
      out.attribute("share_weights", reft->shareWeights);
      out.attribute("component", "block_output");
      writeNumberAttribute(out, "dropout", reft->dropout);
      out.attribute("add_bias", reft->addBias);
      out.attribute("act_fn", nullptr);
      out.attribute("prompt_lengths", reft->promptLengths);
      out.attribute("position_offset", reft->positionOffset);
    } else if (const BottleneckConfig *bn = method.bottleneck()) {
      out.attribute("config", bn->preset);
      out.attribute("adapter_name", bn->adapterName);
      out.attribute("mh_adapter", bn->mhAdapter);
      out.attribute("output_adapter", bn->outputAdapter);
      out.attribute("is_parallel", bn->isParallel);
      writeNumberAttribute(out, "reduction_factor", bn->reductionFactor);
      out.attribute("non_linearity", bn->nonLinearity);
      writeNumberAttribute(out, "scaling", bn->scaling);
      out.attribute("original_ln_before", bn->originalLnBefore);
      out.attribute("original_ln_after", bn->originalLnAfter);
      if (bn->residualBeforeLn == "post_add")
        out.attribute("residual_before_ln", "post_add");
      else
        out.attribute("residual_before_ln", bn->residualBeforeLn == "true");
      out.attribute("init_weights", bn->initWeights);
      out.attributeArray("leave_out", [&] {
        for (int64_t layer : bn->leaveOut)
          out.value(layer);
      });
    } else if (const PromptTuningConfig *prompt = method.promptTuning()) {
      out.attribute("num_virtual_tokens", prompt->numVirtualTokens);
      out.attribute("prompt_tuning_init",
                    prompt->initFromText ? "TEXT" : "RANDOM");
      if (prompt->initFromText)
        out.attributeArray("prompt_tuning_init_token_ids", [&] {
          for (int64_t id : prompt->initTokenIds)
            out.value(id);
        });
      if (prompt->tokenDim)
        out.attribute("token_dim", prompt->tokenDim);
    } else if (const PrefixTuningConfig *prefix = method.prefixTuning()) {
      out.attribute("num_virtual_tokens", prefix->numVirtualTokens);
      out.attribute("prefix_projection", prefix->prefixProjection);
      // The fields PEFT fills from the model, as written (unset: null).
      auto optional = [&](StringRef key, int64_t value) {
        if (value)
          out.attribute(key, value);
        else
          out.attribute(key, nullptr);
      };
      optional("encoder_hidden_size", prefix->encoderHiddenSize);
      optional("token_dim", prefix->tokenDim);
      optional("num_layers", prefix->numLayers);
      optional("num_attention_heads", prefix->numAttentionHeads);
    } else if (const SparseConfig *sparse = method.sparse()) {
      writeSelector(out, "target_modules", sparse->targetModules);
      writeSelector(out, "exclude_modules", sparse->excludeModules);
      writeNumberAttribute(out, "density", sparse->density);
      out.attribute("selection", sparse->selection == SparseSelection::Magnitude
                                     ? "magnitude"
                                     : "random");
      out.attribute("seed", sparse->seed);
    }
  });
}

void writeLoss(json::OStream &out, const LossSpec &loss) {
  out.attributeObject("loss", [&] {
    switch (loss.kind) {
    case LossKind::ModelOutput:
      out.attribute("type", "output");
      out.attribute("name", loss.output);
      break;
    case LossKind::CrossEntropy:
      out.attribute("type", "cross_entropy");
      out.attribute("logits", loss.logits);
      out.attribute("labels", loss.labels);
      out.attribute("shift",
                    loss.shift == LossShift::Causal ? "causal" : "none");
      out.attribute("ignore_index", loss.ignoreIndex);
      break;
    case LossKind::Mse:
      out.attribute("type", "mse");
      out.attribute("prediction", loss.prediction);
      out.attribute("target", loss.target);
      break;
    }
  });
}

void writeOptimizer(json::OStream &out, const OptimizerSpec &optimizer) {
  out.attributeObject("optimizer", [&] {
    bool adamw = optimizer.kind == OptimizerKind::AdamW;
    out.attribute("type", adamw ? "adamw" : "sgd");
    writeNumberAttribute(out, "lr", optimizer.lr);
    if (adamw) {
      out.attributeArray("betas", [&] {
        writeNumber(out, optimizer.beta1);
        writeNumber(out, optimizer.beta2);
      });
      writeNumberAttribute(out, "eps", optimizer.eps);
    } else {
      writeNumberAttribute(out, "momentum", optimizer.momentum);
      out.attribute("nesterov", optimizer.nesterov);
    }
    writeNumberAttribute(out, "weight_decay", optimizer.weightDecay);
    out.attributeArray("no_decay", [&] {
      for (const std::string &name : optimizer.noDecay)
        out.value(name);
    });
  });
}

void writeSchedule(json::OStream &out, const ScheduleSpec &schedule) {
  out.attributeObject("schedule", [&] {
    out.attribute("type", schedule.kind == ScheduleKind::Constant ? "constant"
                          : schedule.kind == ScheduleKind::Cosine ? "cosine"
                                                                  : "linear");
    if (schedule.warmupSteps)
      out.attribute("warmup_steps", *schedule.warmupSteps);
    else
      out.attribute("warmup_steps", nullptr);
    if (schedule.warmupRatio)
      writeNumberAttribute(out, "warmup_ratio", *schedule.warmupRatio);
    else
      out.attribute("warmup_ratio", nullptr);
    if (schedule.totalSteps)
      out.attribute("total_steps", *schedule.totalSteps);
    else
      out.attribute("total_steps", nullptr);
    if (schedule.kind == ScheduleKind::Cosine)
      writeNumberAttribute(out, "num_cycles", schedule.numCycles);
  });
}

void writeTraining(json::OStream &out, const TrainingSpec &training) {
  out.attributeObject("training", [&] {
    out.attributeObject("inputs", [&] {
      for (const InputShape &input : training.inputs)
        out.attributeArray(input.name, [&] {
          for (int64_t dim : input.dims)
            out.value(dim);
        });
    });
    writeLoss(out, training.loss);
    writeOptimizer(out, training.optimizer);
    writeSchedule(out, training.schedule);
    writeNumberAttribute(out, "max_grad_norm", training.maxGradNorm);
    out.attribute("gradient_accumulation_steps",
                  training.gradientAccumulationSteps);
    out.attribute("seed", training.seed);
    if (training.batchSize)
      out.attribute("batch_size", *training.batchSize);
    else
      out.attribute("batch_size", nullptr);
    out.attribute("shuffle", training.shuffle);
    if (training.padTokenId)
      out.attribute("pad_token_id", *training.padTokenId);
    else
      out.attribute("pad_token_id", nullptr);
  });
}

} // namespace

std::string toJson(const PeftSpec &spec) {
  std::string text;
  raw_string_ostream stream(text);
  {
    json::OStream out(stream, /*IndentSize=*/2);
    out.object([&] {
      out.attributeArray("methods", [&] {
        for (const MethodSpec &method : spec.methods)
          writeMethod(out, method);
      });
      writeTraining(out, spec.training);
    });
  }
  stream << "\n";
  return text;
}

} // namespace peft::spec
