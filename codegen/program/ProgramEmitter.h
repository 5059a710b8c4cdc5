//===- ProgramEmitter.h - lowered module -> program::Program ----*- C++ -*-===//
//
// The last step of the compiler middle end: a module after
// peft-decompose, peft-lower-gemms, peft-outline-kernels, the loop emitter
// (which sets `kern.extent` on each kernel function) and peft-plan-memory
// becomes the program the runtime loads (runtime/include/peft/Program.h):
// buffers for every tensor the step functions name, params with their
// initial values, the kernel table and each function's steps.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "peft/Program.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <string>

namespace peft::codegen {

struct ProgramOptions {
  /// Seed of the adapter initialisation (the spec's training.seed).
  uint64_t seed = 0;
  std::string producer = "peftc";
  /// Base model file as given to peftc (Program.weights_path).
  std::string weightsPath;
  /// PEFT adapter_config.json written with saved adapters.
  std::string adapterConfigJson;
};

/// Marks every integer argument of the module's functions that indexes a
/// table (reaches the indices of an `nn.gather` through value-preserving
/// ops: cast to an integer, reshape, transpose, slice) with
/// `peft.index_limit` = the gathered axis' size, the smallest one when it
/// indexes several. emitProgram copies it to program::Arg::indexLimit so the
/// runtime can reject token ids outside the vocabulary before a kernel reads
/// past the table. Run it before lowering, while the gathers are still ops.
void recordIndexLimits(mlir::ModuleOp module);

/// Builds the program; errors are emitted on the op or param at fault.
/// spec_json is the module's `peft.spec` attribute when it has one.
mlir::FailureOr<program::Program>
emitProgram(mlir::ModuleOp module, const ProgramOptions &options = {});

} // namespace peft::codegen
