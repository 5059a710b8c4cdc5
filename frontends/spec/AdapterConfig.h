//===- AdapterConfig.h - the adapter_config.json PEFT writes ----*- C++ -*-===//
//
// A trained adapter is saved the way Hugging Face PEFT's save_pretrained
// saves one (DESIGN.md "Adapters on disk"): adapter_model.safetensors plus
// this file, so PEFT's PeftModel.from_pretrained loads it onto the PyTorch
// model. The writer follows PEFT 0.15: every field of LoraConfig / IA3Config
// with its default, keys sorted, `inference_mode: true`, and the spec's
// all-linear written as the module paths it selected (PEFT replaces the
// sentinel by the matched names before saving).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "frontends/spec/PeftSpec.h"
#include "frontends/spec/TargetResolution.h"

#include <optional>
#include <string>

namespace peft::spec {

struct AdapterConfigOptions {
  /// PEFT's `base_model_name_or_path` (the model's hub id or directory).
  std::string baseModelNameOrPath;
  /// PEFT's `task_type`; unset: "CAUSAL_LM" for the causal-LM loss
  /// (cross-entropy with `shift: causal`), else null.
  std::optional<std::string> taskType;
};

/// The adapter_config.json for `spec` (indented by two, keys sorted, as
/// PEFT's `json.dumps(..., indent=2, sort_keys=True)`). `resolved` (the
/// spec resolved on the model; may be null) supplies the module paths of an
/// all-linear target. A spec PEFT cannot express as one LoraConfig or
/// IA3Config is an error, returned as "" with `error` saying why: no LoRA,
/// DoRA or IA3 method, two of them, or a method composed with them that PEFT
/// has no field for (BitFit on named biases, freeze-layers, full, ReFT).
/// BitFit on all biases composed with LoRA is PEFT's `bias: all`; the
/// modules_to_save of every method are merged.
/// A spec of one PREFIX_TUNING method without projection gets PEFT's
/// PrefixTuningConfig, which needs token_dim, num_layers and
/// num_attention_heads filled from the model (peft-insert-prefix-tuning
/// writes them into the module's spec).
/// A spec of one SPARSE method (no PEFT config exists) gets peftc's own:
/// its fields with `peft_type: SPARSE` (docs/adapters.md), a spec itself.
std::string adapterConfigJson(const PeftSpec &spec,
                              const ResolvedTargets *resolved,
                              std::string &error,
                              const AdapterConfigOptions &options = {});

} // namespace peft::spec
