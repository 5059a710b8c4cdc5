//===- Pipeline.cpp - the passes that turn a spec'd model into a step -----===//
#include "tools/peftc/Pipeline.h"

#include "passes/Passes.h"

#include "llvm/ADT/StringSwitch.h"

namespace peft::driver {

std::optional<Stage> parseStage(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<Stage>>(name)
      .Case("adapters", Stage::Adapters)
      .Case("loss", Stage::Loss)
      .Case("train", Stage::Train)
      .Default(std::nullopt);
}

void buildTrainingPipeline(mlir::PassManager &pm,
                           const PipelineOptions &options) {
  InsertAdaptersOptions insert;
  insert.initAdapter = options.initAdapter;
  pm.addPass(createInsertAdapters(insert));
  pm.addPass(createInsertInterventions());
  pm.addPass(createFreezeParams());
  if (options.stage == Stage::Adapters)
    return;
  pm.addPass(createBuildLoss());
  if (options.stage == Stage::Loss)
    return;
  pm.addPass(createDifferentiateTrainable());
  OptimizerOptions optimizer;
  optimizer.totalSteps = options.totalSteps;
  pm.addPass(createOptimizer(optimizer));
}

} // namespace peft::driver
