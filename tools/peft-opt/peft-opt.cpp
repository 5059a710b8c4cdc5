//===- peft-opt.cpp - run any peftc pass alone
//------------------------------===//
#include "dialects/kern/KernOps.h"
#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::func::FuncDialect, peft::nn::NNDialect,
                  peft::pir::PeftDialect, peft::kern::KernDialect>();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  peft::registerPeftPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "peftc optimizer driver\n", registry));
}
