//===- TargetResolution.h - Which modules each method touches ---*- C++ -*-===//
//
// Applies a PeftSpec to a model's module list with Hugging Face PEFT's
// matching rules (tuners_utils.check_target_module_exists, get_pattern_key,
// _maybe_include_all_linear_layers, _set_trainable). Independent of MLIR: the
// caller describes the model's modules (from the ONNX import, or by hand in
// tests).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "frontends/spec/PeftSpec.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace peft::spec {

/// One module of the model, named as PEFT would name it
/// ("model.layers.0.self_attn.q_proj").
struct ModuleInfo {
  std::string path;
  /// "linear", "embedding", "conv", "norm", ...
  std::string kind;
  int64_t inFeatures = 0;
  int64_t outFeatures = 0;
  /// Index of the transformer layer the module belongs to, if any.
  std::optional<int> layer;
  /// The output projection (lm_head or a classifier): "all-linear" leaves it
  /// out, as PEFT does.
  bool isOutputHead = false;
  /// Whether the module has a bias parameter (BitFit, `bias: all`).
  bool hasBias = false;
};

/// A module a LoRA/DoRA or IA3 method adapts.
struct AdapterTarget {
  std::string path;
  size_t moduleIndex = 0;   // into the module list
  int64_t rank = 0;         // LoRA: r, or the rank_pattern entry that matched
  double alpha = 0;         // LoRA: lora_alpha, or the alpha_pattern entry
  double scale = 0;         // LoRA: alpha/r, or alpha/sqrt(r) with rsLoRA
  bool feedforward = false; // IA3: scales the input rather than the output
  std::optional<int> layer;
};

/// What one method of the spec does to the model.
struct ResolvedMethod {
  size_t methodIndex = 0; // into PeftSpec::methods
  MethodKind kind = MethodKind::Lora;
  /// LoRA/DoRA/IA3 adapters, in module-list order.
  std::vector<AdapterTarget> adapters;
  /// Modules whose bias trains (LoRA `bias`, BitFit).
  std::vector<std::string> trainableBiases;
  /// Modules trained in full (modules_to_save, freeze-layers, full).
  std::vector<std::string> trainableModules;
};

struct ResolvedTargets {
  std::vector<ResolvedMethod> methods;
  /// What PEFT warns about (an exclude_modules entry that excludes nothing,
  /// a rank_pattern key that matches no adapted module, ...).
  std::vector<std::string> warnings;
};

/// Resolves every method of `spec` against `modules`. On failure returns
/// false with "file:line:col: error: ..." pointing into the spec, plus a note
/// naming the nearest module paths where a pattern matched nothing.
bool resolveTargets(const PeftSpec &spec,
                    const std::vector<ModuleInfo> &modules,
                    ResolvedTargets &resolved, std::string &error);

/// The resolution as JSON (for --print-spec and tests).
std::string toJson(const ResolvedTargets &resolved);

} // namespace peft::spec
