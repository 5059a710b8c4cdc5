//===- Pipeline.h - the training pipeline --------------------- -*- C++ -*-===//
//
// The one definition of peftc's training pipeline, shared by the driver
// (`peftc --emit=mlir`) and the code generators, so what the user inspects
// is what gets compiled.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace peft::driver {

/// How far the pipeline goes. Each stage includes the ones before it.
enum class Stage {
  /// peft-insert-adapters, peft-freeze: @forward with the adapters.
  Adapters,
  /// + peft-build-loss: @loss.
  Loss,
  /// + peft-differentiate, peft-optimizer: @train_step (and @apply_update
  /// with gradient accumulation), one optimizer step.
  Train,
};

/// Parses "adapters", "loss" or "train".
std::optional<Stage> parseStage(llvm::StringRef name);

struct PipelineOptions {
  Stage stage = Stage::Train;
  /// A PEFT adapter directory (save_pretrained layout) to start from.
  std::string initAdapter;
  /// Optimizer steps of the run, for a schedule whose spec leaves
  /// total_steps unset (0: the spec must give it, or the schedule must be
  /// constant).
  int64_t totalSteps = 0;
};

/// Adds the passes that follow import and spec attachment (the module must
/// carry `peft.spec`, see analysis::attachSpec): insert-adapters -> freeze
/// -> build-loss -> differentiate -> optimizer, stopping at `stage`.
/// @forward stays in the module at every stage (the evaluation of a trained
/// model runs @loss, which build-loss derives from it).
void buildTrainingPipeline(mlir::PassManager &pm,
                           const PipelineOptions &options);

} // namespace peft::driver
