//===- Compile.h - training IR -> native trainer / program object -*- C++
//-*-===//
//
// The back half of `peftc model.onnx --spec s.yaml -o trainer`: lowers the
// training module (after driver::buildTrainingPipeline) to kernels and GEMM
// calls, plans memory, emits the program and the kernels as one object file
// and links it with the system C++ driver against the static runtime.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "peft/Program.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <cstdint>
#include <string>

namespace peft::driver {

enum class OutputKind {
  /// An executable: the object + peftrt_trainer_main + peftrt (static).
  Trainer,
  /// A shared object the runtime loads with Program::loadShared.
  Shared,
  /// The relocatable object alone.
  Object,
};

struct CompileOptions {
  OutputKind kind = OutputKind::Trainer;
  std::string output;
  /// The base model as given on the command line (made absolute).
  std::string modelPath;
  uint64_t seed = 0;
  std::string adapterConfigJson;
  /// Print the memory plan (peak and sum of buffers) to stdout.
  bool printMemoryPlan = false;
  /// Keep the object file next to the output (`<output>.o`).
  bool keepObject = false;
};

/// A lowered program: what the runtime loads, and the loop kernels it
/// launches (to JIT-compile, or to emit as object code).
struct LoweredProgram {
  program::Program program;
  mlir::OwningOpRef<mlir::ModuleOp> loops;
};

/// Lowers `module` (after buildTrainingPipeline) in place: decompose, GEMMs,
/// kernel outlining, loop emission, the memory plan, the program.
mlir::FailureOr<LoweredProgram> lowerProgram(mlir::ModuleOp module,
                                             const CompileOptions &options);

/// Lowers `module` in place and writes the output. Errors are reported
/// through the context's diagnostics or on stderr, prefixed "peftc: error:".
mlir::LogicalResult compileProgram(mlir::ModuleOp module,
                                   const CompileOptions &options);

} // namespace peft::driver
