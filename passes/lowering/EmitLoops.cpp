//===- EmitLoops.cpp - kern.kernel functions -> loop kernels --------------===//
//
// A thin pass over codegen/cpu's emitLoopKernels, so the loop form of any
// kernel can be printed and FileChecked with peft-opt.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "codegen/cpu/LoopEmitter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace peft {
#define GEN_PASS_DEF_EMITLOOPS
#include "passes/Passes.h.inc"
} // namespace peft

namespace {

struct EmitLoopsPass : public peft::impl::EmitLoopsBase<EmitLoopsPass> {
  using EmitLoopsBase::EmitLoopsBase;
  void runOnOperation() override {
    if (chunk < 1) {
      getOperation().emitError("peft-emit-loops: chunk must be at least 1");
      return signalPassFailure();
    }
    peft::codegen::LoopEmitOptions options;
    options.chunk = chunk;
    if (mlir::failed(peft::codegen::emitLoopKernels(getOperation(), options)))
      signalPassFailure();
  }
};

} // namespace
