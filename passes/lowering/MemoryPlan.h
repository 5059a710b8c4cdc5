//===- MemoryPlan.h - reading the arena plan --------------------*- C++ -*-===//
//
// peft-plan-memory records the plan as attributes (dialects/kern/KernOps.h,
// kern::attr); this is how tools and the program emitter read it back.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

namespace peft::lowering {

/// `--print-memory-plan`: the arena's peak and the sum of all buffers, then
/// per function its arena buffers (offset, bytes, what defines them). Fails
/// when the module has no plan.
mlir::LogicalResult printMemoryPlan(mlir::ModuleOp module,
                                    llvm::raw_ostream &os);

} // namespace peft::lowering
