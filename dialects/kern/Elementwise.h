//===- Elementwise.h - which ops are elementwise ----------------*- C++ -*-===//
//
// The one classification peft-outline-kernels fuses by and the loop emitter
// generates per-element code for: ops whose every result element depends
// only on the operand elements at the same (broadcast) index.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mlir/IR/Operation.h"

namespace peft::kern {

/// nn unary math and activations, binary arithmetic and logic (numpy
/// broadcasting), comparisons, is_nan/is_inf, where and cast, and the
/// per-element optimizer updates peft.adamw and peft.sgd (their lr and step
/// operands are scalars broadcast over the parameter).
bool isElementwise(mlir::Operation *op);

} // namespace peft::kern
