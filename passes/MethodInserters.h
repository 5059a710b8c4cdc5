//===- MethodInserters.h - methods peft-insert-adapters places by structure -*-
//C++ -*-===//
//
// LoRA-family methods adapt the modules the spec names; bottleneck adapters
// and prompt tuning are placed by the model's structure instead (the
// residual adds around attention and the FFN, the word embedding table).
// peft-insert-adapters calls these with its own param factory, so params
// get the same bookkeeping (peft.key, peft.method, insertion order).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dialects/peft/PeftOps.h"
#include "frontends/spec/PeftSpec.h"
#include "passes/analysis/ModuleNames.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/STLFunctionalExtras.h"

namespace peft {

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
