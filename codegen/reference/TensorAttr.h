//===- TensorAttr.h - MLIR types/attributes <-> runtime tensors -*- C++ -*-===//
#pragma once

#include "peft/Tensor.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"

namespace peft {

/// Maps an MLIR element type to a runtime dtype (i1->Bool, i64->I64, ...).
std::optional<DType> toDType(mlir::Type elementType);
mlir::Type toElementType(mlir::MLIRContext *ctx, DType dtype);
Shape toShape(mlir::RankedTensorType type);
mlir::RankedTensorType toTensorType(mlir::MLIRContext *ctx, DType dtype,
                                    const Shape &shape);

/// Copies an elements attribute (dense or splat) into an owned tensor.
std::optional<Tensor> tensorFromAttr(mlir::ElementsAttr attr);
/// A dense attribute holding `t` with type `type` (splat when all equal).
mlir::DenseElementsAttr attrFromTensor(const Tensor &t,
                                       mlir::RankedTensorType type);

} // namespace peft
