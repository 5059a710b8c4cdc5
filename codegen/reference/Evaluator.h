//===- Evaluator.h - the reference evaluator --------------------*- C++ -*-===//
//
// A plain interpreter of nn and peft ops over host tensors: the golden
// semantics every pass and kernel is tested against. Clarity over speed:
// float math runs in double and is rounded to the result type (or kept in
// f64 when `promoteToF64` is set, for f64 parity with PyTorch goldens).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "peft/Tensor.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Operation.h"
#include "llvm/ADT/StringMap.h"

#include <functional>
#include <map>
#include <vector>

namespace peft::ref {

struct EvalOptions {
  /// Store every floating-point tensor as f64 (params and inputs included).
  bool promoteToF64 = false;
};

class Evaluator;

/// What a kernel may ask of the evaluator.
struct EvalContext {
  const EvalOptions &options;
  /// The dtype a result of type `t` is stored in (f64 when promoting floats).
  DType storageType(mlir::Type t) const;
  DType storageType(mlir::Value v) const;
};

/// Evaluates `op` on `operands`; appends one tensor per op result.
/// Errors are emitted on the op's location.
using Kernel = std::function<mlir::LogicalResult(
    mlir::Operation *op, llvm::ArrayRef<Tensor> operands,
    llvm::SmallVectorImpl<Tensor> &results, const EvalContext &ctx)>;

class KernelRegistry {
public:
  static KernelRegistry &instance();
  void add(llvm::StringRef opName, Kernel kernel);
  const Kernel *lookup(llvm::StringRef opName) const;
  bool contains(llvm::StringRef opName) const { return lookup(opName); }

private:
  KernelRegistry();
  llvm::StringMap<Kernel> kernels_;
};

class Evaluator {
public:
  Evaluator(mlir::ModuleOp module, EvalOptions options = {});

  /// Runs function `name` (default: the module's first function) on
  /// `inputs`, checking their dtypes and shapes against its signature.
  mlir::FailureOr<std::vector<Tensor>> run(llvm::ArrayRef<Tensor> inputs,
                                           llvm::StringRef name = "");

  /// Evaluates one op whose operands are already known (import-time folding).
  static mlir::FailureOr<llvm::SmallVector<Tensor>>
  evaluateOp(mlir::Operation *op, llvm::ArrayRef<Tensor> operands,
             const EvalOptions &options = {});

  /// The value of a peft.param: its override (see below) if it has one, else
  /// a view of its mapped storage, or its inline value.
  mlir::FailureOr<Tensor> paramValue(mlir::Operation *useOrParam);
  /// The same, for the param named `name`.
  mlir::FailureOr<Tensor> paramValue(llvm::StringRef name);

  /// Param overrides: `run` applies every `peft.assign` of the function when
  /// it returns (all its `peft.use`s read the values from before the call),
  /// so later runs see the updated params, e.g. over several training steps.
  /// The value assigned to param `name`, or null when it has none.
  const Tensor *paramOverride(llvm::StringRef name) const;
  /// Sets the value later runs read for param `name` (a copy of `value`,
  /// stored in the evaluator's dtype for it), e.g. an initial adapter or
  /// restored optimizer state. Fails when there is no such param or the
  /// shape or dtype does not fit it.
  mlir::LogicalResult setParam(llvm::StringRef name, const Tensor &value);
  /// Forgets all overrides: params read their storage again.
  void clearParamOverrides() { overrides_.clear(); }

private:
  mlir::ModuleOp module_;
  EvalOptions options_;
  std::map<std::string, std::shared_ptr<MappedFile>> mapped_;
  llvm::StringMap<Tensor> overrides_;
};

} // namespace peft::ref
