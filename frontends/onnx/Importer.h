//===- Importer.h - ONNX model -> nn/peft IR -------------------*- C++ -*-===//
#pragma once

#include "peft/Tensor.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <map>
#include <string>

namespace peft::onnx_import {

struct ImportOptions {
  /// Static shapes for graph inputs with symbolic dimensions
  /// (`--input-shape input_ids=8x128`).
  std::map<std::string, Shape> inputShapes;
  /// Shapes of the tensors a tool was handed for the inputs (peft-run's
  /// --inputs): used where inputShapes says nothing; names that are no graph
  /// input are ignored.
  std::map<std::string, Shape> dataShapes;
  /// Graph inputs whose values are known at compile time (conformance tests
  /// feed shape inputs this way). They become constants, not arguments.
  std::map<std::string, Tensor> constantInputs;
  /// Ops whose operands are all constants are folded when the result has at
  /// most this many elements.
  int64_t foldElementLimit = 1 << 16;
  /// Also fold ops with floating-point results (off by default: see
  /// GraphImporter::foldConstants; lit tests use it to check kernel values).
  bool foldFloat = false;
  /// Name of the imported function.
  std::string functionName = "forward";
};

/// Parses "name=2x16,other=4" style shape lists; returns false with a message.
bool parseInputShapes(const std::string &text,
                      std::map<std::string, Shape> &out, std::string &error);

/// Imports `path` (.onnx or .onnxtext). Errors are emitted as diagnostics on
/// `context` (naming the file, node, op and fix); returns null on failure.
mlir::OwningOpRef<mlir::ModuleOp> importOnnxModel(mlir::MLIRContext &context,
                                                  const std::string &path,
                                                  const ImportOptions &options);

/// Registers the dialects the importer produces.
void registerImportDialects(mlir::DialectRegistry &registry);

} // namespace peft::onnx_import
