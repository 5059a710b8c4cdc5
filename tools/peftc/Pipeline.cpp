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
  // Prefix tuning's params come first, so that --init-adapter (loaded by
  // insert-adapters) finds them; a no-op without a PREFIX_TUNING method.
  pm.addPass(createInsertPrefixTuning());
  InsertAdaptersOptions insert;
  insert.initAdapter = options.initAdapter;
  pm.addPass(createInsertAdapters(insert));
  pm.addPass(createInsertInterventions());
  pm.addPass(createInsertSparse());
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
