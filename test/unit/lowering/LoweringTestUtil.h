//===- LoweringTestUtil.h - a golden case, lowered --------------*- C++ -*-===//
#pragma once

#include "codegen/program/ProgramEmitter.h"
#include "frontends/onnx/Importer.h"
#include "frontends/spec/PeftSpec.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <string>

namespace peft::lowering_test {

inline std::string goldenPath(const std::string &relative) {
  return std::string(PEFT_GOLDENS_DIR) + "/" + relative;
}

inline void registerLoweringDialects(mlir::DialectRegistry &registry) {
  onnx_import::registerImportDialects(registry);
  registry.insert<mlir::func::FuncDialect, nn::NNDialect, pir::PeftDialect,
                  kern::KernDialect>();
}

/// `model` compiled with `spec` as peftc compiles it, through the training
/// passes and the lowering to kernels (up to peft-plan-memory). Errors go to
/// `error`.
inline mlir::OwningOpRef<mlir::ModuleOp>
buildLowered(mlir::MLIRContext &ctx, const std::string &model,
             const std::string &specPath, spec::PeftSpec &spec,
             std::string &error) {
  if (!spec::parseSpecFile(specPath, spec, error))
    return nullptr;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    error += d.str() + "\n";
    return mlir::success();
  });
  onnx_import::ImportOptions options;
  for (const spec::InputShape &input : spec.training.inputs)
    options.dataShapes[input.name] = input.dims;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      onnx_import::importOnnxModel(ctx, model, options);
  if (!module)
    return nullptr;
  mlir::PassManager canonicalize(&ctx);
  canonicalize.addPass(mlir::createCanonicalizerPass());
  if (failed(canonicalize.run(*module)) ||
      failed(analysis::annotateModules(*module)))
    return nullptr;
  analysis::writeSpecAttr(*module, spec);
  mlir::PassManager pm(&ctx);
  pm.addPass(createInsertAdapters());
  pm.addPass(createFreezeParams());
  pm.addPass(createBuildLoss());
  pm.addPass(createDifferentiateTrainable());
  pm.addPass(createOptimizer());
  if (failed(pm.run(*module)))
    return nullptr;
  codegen::recordIndexLimits(*module);
  pm.clear();
  pm.addPass(createDecompose());
  pm.addPass(createLowerGemms());
  pm.addPass(createOutlineKernels());
  pm.addPass(createPlanMemory());
  if (failed(pm.run(*module)) || failed(mlir::verify(*module)))
    return nullptr;
  return module;
}

} // namespace peft::lowering_test
