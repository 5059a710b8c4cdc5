//===- NNOps.h - nn ops -----------------------------------------*- C++ -*-===//
#pragma once

#include "dialects/nn/NNDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace peft::nn {

/// Numpy broadcasting of two static shapes. Emits an error at `loc` (if any)
/// naming both shapes when they do not broadcast.
mlir::LogicalResult broadcastShapes(std::optional<mlir::Location> loc,
                                    llvm::ArrayRef<int64_t> a,
                                    llvm::ArrayRef<int64_t> b,
                                    llvm::SmallVectorImpl<int64_t> &out);

/// Result type of an elementwise binary op: broadcast shape, element type of
/// the operands (which must agree) or `resultElementType` when given.
mlir::LogicalResult
inferBroadcastResult(std::optional<mlir::Location> loc, mlir::Type lhs,
                     mlir::Type rhs, mlir::Type resultElementType,
                     llvm::SmallVectorImpl<mlir::Type> &out);

/// Emits `msg` at `loc` when a location is given; always returns failure.
mlir::LogicalResult inferenceError(std::optional<mlir::Location> loc,
                                   const llvm::Twine &msg);

/// Normalises a possibly negative axis for a tensor of `rank`; fails (with a
/// message at `loc`) when out of range.
mlir::FailureOr<int64_t> normalizeAxis(std::optional<mlir::Location> loc,
                                       int64_t axis, int64_t rank);

} // namespace peft::nn

#define GET_OP_CLASSES
#include "dialects/nn/NNOps.h.inc"
