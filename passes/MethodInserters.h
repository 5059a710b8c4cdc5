//===- MethodInserters.h - what the PEFT method passes share ---*- C++ -*-===//
//
// peft-insert-adapters, peft-insert-interventions, peft-insert-sparse and
// peft-insert-prefix-tuning create their params through one ParamFactory,
// so every method's params get the same bookkeeping (insertion order,
// peft.key, peft.method, init), and share target resolution, the step
// counter and layout-chain replication.
//
// LoRA-family methods adapt the modules the spec names; bottleneck adapters
// and prompt tuning are placed by the model's structure instead (the
// residual adds around attention and the FFN, the word embedding table).
// peft-insert-adapters calls these with its own param factory.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dialects/peft/PeftOps.h"
#include "frontends/spec/PeftSpec.h"
#include "frontends/spec/TargetResolution.h"
#include "passes/analysis/ModuleNames.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <string>

namespace mlir {
class SymbolTable;
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace peft {

/// Creates the params a PEFT pass adds to a module, with the bookkeeping
/// every method shares: each goes after the module's last param (so params
/// keep their creation order, ahead of the functions), is keyed (`peft.key`)
/// by its name, the name it is saved under, and is registered in the
/// pass's symbol table.
class ParamFactory {
public:
  /// `pass` names the pass in errors; `duplicateHint` says how a param of
  /// the same name can exist already.
  ParamFactory(mlir::ModuleOp module, mlir::SymbolTable &symbols,
               llvm::StringRef pass,
               llvm::StringRef duplicateHint = "was the pass run twice?");

  /// A param `name` of `type`, trainable or frozen, with initializer `init`
  /// (the `init` attribute, none if empty), method `method` (`peft.method`,
  /// none if empty) and, if given, `initArgs` (`peft.init_args`). Null, with
  /// an error at `loc`, when a param `name` exists already.
  pir::ParamOp create(mlir::Location loc, llvm::StringRef name,
                      mlir::RankedTensorType type, bool trainable,
                      llvm::StringRef init, llvm::StringRef method,
                      mlir::DictionaryAttr initArgs = {});

private:
  mlir::ModuleOp module_;
  mlir::SymbolTable &symbols_;
  mlir::OpBuilder builder_;
  std::string pass_, duplicateHint_;
  /// The param the next one goes after (null: none created or found yet).
  mlir::Operation *last_ = nullptr;
};

/// A module's table (ModuleNames) and where the spec's methods apply in it
/// (PEFT's target rules).
struct MethodTargets {
  analysis::ModuleTable table;
  spec::ResolvedTargets resolved;
};
/// The MethodTargets of `spec` in function `funcName` of `module`; errors
/// name `pass`.
mlir::FailureOr<MethodTargets> resolveMethodTargets(mlir::ModuleOp module,
                                                    llvm::StringRef funcName,
                                                    const spec::PeftSpec &spec,
                                                    llvm::StringRef pass);

/// Reads `param` where `b` stands (a `peft.use`).
mlir::Value useParam(mlir::OpBuilder &b, mlir::Location loc,
                     pir::ParamOp param);

/// The training step counter of `func`: its argument marked `peft.step`,
/// added as the first argument when it has none (where peft-optimizer puts
/// the optimizer step, which it then is). peft.dropout's masks read it.
mlir::Value stepArgument(mlir::func::FuncOp func);

/// Rebuilds the chain of layout/type ops (transposes, casts) between a
/// param's `peft.use` and `value` on top of `source`, at `b`'s point.
mlir::Value replicateChain(mlir::OpBuilder &b, mlir::Value value,
                           mlir::Value source);

/// Makes a trainable param `name` (also its saved key) of `shape`.
using CreateParamFn = llvm::function_ref<pir::ParamOp(
    mlir::Location loc, llvm::StringRef name, llvm::ArrayRef<int64_t> shape,
    mlir::Type elementType, llvm::StringRef init, llvm::StringRef method)>;

/// Adds the `adapters` library's bottleneck adapters (spec::BottleneckConfig
/// documents the computation) after the attention output projection
/// (`mh_adapter`) and the FFN output projection (`output_adapter`) of every
/// decoder layer not in `leave_out`, with the library's parameter names
/// (`model.layers.N.output_adapters.adapters.<name>.adapter_down.0.weight`).
mlir::LogicalResult insertBottleneckAdapters(
    mlir::ModuleOp module, const analysis::ModuleTable &table,
    const spec::BottleneckConfig &config, CreateParamFn createParam);

/// PEFT's prompt tuning on an imported graph (DESIGN.md "Method semantics"):
/// the word embedding table read at `input_ids` becomes concat(table,
/// prompt_embeddings) [V + P, d]; the function's `input_ids` and
/// `attention_mask` arguments (imported with T + P positions) become
/// [B, T] arguments prefixed inside with the virtual ids V..V+P-1 and with
/// ones; the function gets `peft.virtual_tokens` = P, which peft-build-loss
/// reads to prefix the labels with ignore_index.
mlir::LogicalResult insertPromptTuning(mlir::ModuleOp module,
                                       const analysis::ModuleTable &table,
                                       const spec::PromptTuningConfig &config,
                                       CreateParamFn createParam);

} // namespace peft
