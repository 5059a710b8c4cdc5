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
void registerDropoutKernels(KernelRegistry &r);
void registerReftKernels(KernelRegistry &r);
void registerSparseKernels(KernelRegistry &r);
void registerGradKernels(KernelRegistry &r);
void registerKernKernels(KernelRegistry &r);
void registerAttentionKernels(KernelRegistry &r);

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

/// The sliding window of a convolution or pool: per spatial dim its
/// stride, dilation, and begin pads followed by end pads (ONNX layout).
struct Window {
  llvm::ArrayRef<int64_t> strides, pads, dilations;
  size_t rank() const { return strides.size(); }
};

/// Visits each tap of the window of output position `o` ([n, c, o1..ok]):
/// whether it lies in the input, whether it lies in the padded extent, and
/// its input offset (meaningful when in the input).
template <typename F>
void forEachTap(const std::vector<int64_t> &o, const Shape &inShape,
                const Shape &kernel, const Window &win, F visit) {
  size_t k = win.rank();
  std::vector<int64_t> xs = stridesOf(inShape), t;
  int64_t base = o[0] * xs[0] + o[1] * xs[1];
  for (int64_t tap = 0, taps = numElements(kernel); tap < taps; ++tap) {
    unravel(tap, kernel, t);
    int64_t off = base;
    bool inInput = true, inPadded = true;
    for (size_t d = 0; d < k; ++d) {
      int64_t pos =
          o[d + 2] * win.strides[d] - win.pads[d] + t[d] * win.dilations[d];
      int64_t extent = inShape[d + 2];
      inInput &= pos >= 0 && pos < extent;
      inPadded &= pos >= -win.pads[d] && pos < extent + win.pads[d + k];
      off += pos * xs[d + 2];
    }
    visit(inInput, inPadded, off);
  }
}

} // namespace peft::ref
