//===- AdapterSave.h - the tensors of a saved adapter --------- -*- C++ -*-===//
//
// What PEFT's save_pretrained would write to adapter_model.safetensors for
// a trained module: every param that carries `peft.key` (trainable ones,
// and frozen ones a method saves with them, such as sparse fine-tuning's
// indices), under that key, in PEFT's layout (a param stored as the transpose of PyTorch's
// tensor, `peft.key_transposed`, is transposed back). docs/spec.md, "Saved
// adapters", lists the keys per method.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "passes/AdapterInit.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <utility>
#include <vector>

namespace peft::adapters {

/// The saved adapter's tensors, sorted by key (safetensors' order), each in
/// the dtype `read` gives. Fails (with an error on the param) when a
/// transposed param is not a matrix or two params claim one key.
mlir::FailureOr<std::vector<std::pair<std::string, Tensor>>>
adapterTensors(mlir::ModuleOp module, ParamReader read);

/// The [d1, d0] transpose of a [d0, d1] tensor.
Tensor transposed2d(const Tensor &t);

} // namespace peft::adapters
