//===- KernOps.h - the kern dialect -----------------------------*- C++ -*-===//
#pragma once

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/kern/KernDialect.h.inc"

#define GET_OP_CLASSES
#include "dialects/kern/KernOps.h.inc"

namespace peft::kern {

/// Discardable attributes of the kern pipeline (docs/codegen.md).
namespace attr {
/// func.func (unit): an outlined kernel function, called by kern.launch.
constexpr llvm::StringLiteral kKernel = "kern.kernel";
/// Kernel func (i64): the size of its flattened parallel dimension, set by
/// the loop emitter.
constexpr llvm::StringLiteral kExtent = "kern.extent";
/// kern.gemm / kern.launch (i64 array): the arena offset of each result.
constexpr llvm::StringLiteral kOffsets = "kern.offsets";
/// func.func (i64 array): the arena offset of each argument.
constexpr llvm::StringLiteral kArgOffsets = "kern.arg_offsets";
/// Module (i64): the arena's size, the memory plan's peak.
constexpr llvm::StringLiteral kArenaBytes = "kern.arena_bytes";
/// Module (i64): the sum of the sizes of all arena buffers (no reuse).
constexpr llvm::StringLiteral kBufferBytesSum = "kern.buffer_bytes_sum";
} // namespace attr

/// Every arena offset is a multiple of this.
constexpr int64_t kArenaAlignment = 64;

/// Bytes a tensor of `type` occupies (booleans take a byte each).
int64_t tensorBytes(mlir::RankedTensorType type);

} // namespace peft::kern
