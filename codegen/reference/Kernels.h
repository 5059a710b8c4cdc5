//===- Kernels.h - helpers shared by the reference kernels ------*- C++ -*-===//
#pragma once

#include "codegen/reference/Evaluator.h"
#include "codegen/reference/TensorAttr.h"

#include "mlir/IR/BuiltinTypes.h"

namespace peft::ref {

// One registration function per op family (each in its own file).
void registerElementwiseKernels(KernelRegistry &r);
void registerShapeKernels(KernelRegistry &r);
void registerReductionKernels(KernelRegistry &r);
void registerLinalgKernels(KernelRegistry &r);
void registerNormKernels(KernelRegistry &r);
void registerPeftKernels(KernelRegistry &r);
void registerGradKernels(KernelRegistry &r);

inline Shape resultShape(mlir::Operation *op, unsigned i = 0) {
  return toShape(
      mlir::cast<mlir::RankedTensorType>(op->getResult(i).getType()));
}

/// Row-major strides of `shape`.
std::vector<int64_t> stridesOf(const Shape &shape);
/// Unravels a linear index into `idx` (size = rank of shape).
void unravel(int64_t linear, const Shape &shape, std::vector<int64_t> &idx);

/// Maps linear indices of a broadcast result to linear indices of one operand.
class BroadcastMap {
public:
  BroadcastMap(const Shape &operand, const Shape &result);
  int64_t operator()(int64_t resultLinear) const;

private:
  Shape result_;
  std::vector<int64_t> strides_; // operand strides, 0 on broadcast dims
};

/// y[i] = f(x[i]) in double (floats) or int64 (integers and bool).
Tensor mapUnaryFloat(const Tensor &x, DType out,
                     const std::function<double(double)> &f);
Tensor mapUnaryInt(const Tensor &x, DType out,
                   const std::function<int64_t(int64_t)> &f);
/// z = f(x, y) with broadcasting to `shape`.
Tensor mapBinaryFloat(const Tensor &x, const Tensor &y, const Shape &shape,
                      DType out,
                      const std::function<double(double, double)> &f);
Tensor mapBinaryInt(const Tensor &x, const Tensor &y, const Shape &shape,
                    DType out,
                    const std::function<int64_t(int64_t, int64_t)> &f);

/// Convenience for registering a kernel that has exactly one result.
template <typename F> Kernel singleResult(F f) {
  return [f](mlir::Operation *op, llvm::ArrayRef<Tensor> in,
             llvm::SmallVectorImpl<Tensor> &out,
             const EvalContext &ctx) -> mlir::LogicalResult {
    mlir::FailureOr<Tensor> t = f(op, in, ctx);
    if (mlir::failed(t))
      return mlir::failure();
    out.push_back(std::move(*t));
    return mlir::success();
  };
}

} // namespace peft::ref
