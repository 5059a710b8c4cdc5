//===- OpChain.h - building a decomposition op by op ---------------*- C++
//-*-===//
//
// Handlers that decompose an ONNX op into several nn ops (ReduceLogSumExp,
// InstanceNormalization, ...) build them through an OpChain: the first
// failure is reported at the node and every later step yields null, so a
// formula reads straight through and is checked once, when it is set as the
// node's result.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "frontends/onnx/NodeImport.h"

#include "dialects/nn/NNOps.h"

namespace peft::onnx_import {

class OpChain {
public:
  explicit OpChain(NodeContext &n) : n_(n) {}

  mlir::OpBuilder &builder() { return n_.builder(); }

  /// `OpTy` with its result type inferred.
  template <typename OpTy>
  mlir::Value op(llvm::ArrayRef<mlir::Value> operands,
                 llvm::ArrayRef<mlir::NamedAttribute> attrs = {}) {
    if (!usable(operands))
      return nullptr;
    return take(n_.create<OpTy>(operands, attrs));
  }

  /// `v` with a new static shape (no op when the shape is unchanged).
  mlir::Value reshape(mlir::Value v, llvm::ArrayRef<int64_t> shape) {
    if (!usable(v))
      return nullptr;
    auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
    if (type.getShape() == shape)
      return v;
    return take(n_.createTyped<nn::ReshapeOp>({type.clone(shape)}, {v}));
  }

  /// `v` converted to `elementType` (no op when it already has it).
  mlir::Value castTo(mlir::Value v, mlir::Type elementType) {
    if (!usable(v))
      return nullptr;
    auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
    if (type.getElementType() == elementType)
      return v;
    return take(n_.createTyped<nn::CastOp>({type.clone(elementType)}, {v}));
  }

  /// A core nn reduction over sorted non-negative `axes`; no op at all when
  /// `axes` is empty (reducing over nothing is the identity).
  template <typename OpTy>
  mlir::Value reduce(mlir::Value v, llvm::ArrayRef<int64_t> axes,
                     bool keepdims) {
    if (!usable(v))
      return nullptr;
    if (axes.empty())
      return v;
    mlir::OpBuilder &b = n_.builder();
    llvm::SmallVector<mlir::NamedAttribute> attrs{
        b.getNamedAttr("axes", b.getDenseI64ArrayAttr(axes))};
    if (keepdims)
      attrs.push_back(b.getNamedAttr("keepdims", b.getUnitAttr()));
    return take(n_.create<OpTy>({v}, attrs));
  }

  /// A rank-0 constant of `like`'s element type.
  mlir::Value scalar(mlir::Value like, double value) {
    if (!usable(like))
      return nullptr;
    return n_.scalarLike(like, value);
  }

  /// Sets output `i` of the node; fails if any step of the chain failed.
  mlir::LogicalResult setResult(unsigned i, mlir::Value v) {
    if (!usable(v))
      return mlir::failure();
    n_.setResult(i, v);
    return mlir::success();
  }

  bool failed() const { return failed_; }
  /// Records a failure the caller has reported itself (a bad input shape).
  void markFailed() { failed_ = true; }

private:
  bool usable(llvm::ArrayRef<mlir::Value> values) {
    failed_ |= llvm::any_of(values, [](mlir::Value v) { return !v; });
    return !failed_;
  }
  mlir::Value take(mlir::FailureOr<mlir::Value> v) {
    if (mlir::failed(v)) {
      failed_ = true;
      return nullptr;
    }
    return *v;
  }

  NodeContext &n_;
  bool failed_ = false;
};

} // namespace peft::onnx_import
