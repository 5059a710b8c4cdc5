//===- GradKernels.cpp - backward-only ops (conv weight, pooling) ---------===//
//
// Each kernel is the adjoint of the forward kernel in LinalgKernels.cpp,
// written as the same loop nest with the accumulation reversed, so the two
// agree on padding, dilation, groups and ceil_mode by construction.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Kernels.h"
#include "dialects/nn/NNOps.h"

#include <limits>

using namespace mlir;

namespace peft::ref {
namespace {

/// dW[m, c, t] = sum over n, o of dY[n, m, o] * x[n, g(m)*C/G + c, tap pos].
FailureOr<Tensor> convWeightGrad(Operation *op, ArrayRef<Tensor> in,
                                 const EvalContext &ctx) {
  auto c = cast<nn::ConvWeightGradOp>(op);
  Window win{c.getStrides(), c.getPads(), c.getDilations()};
  const Tensor &x = in[0], &dy = in[1];
  Shape wShape = resultShape(op);
  size_t k = win.rank();
  int64_t group = c.getGroup();
  int64_t inPerGroup = wShape[1], outPerGroup = wShape[0] / group;
  Shape kernel(wShape.begin() + 2, wShape.end());
  Shape inSpatial(x.shape().begin() + 2, x.shape().end());
  std::vector<int64_t> xs = stridesOf(x.shape()), ws = stridesOf(wShape);

  std::vector<double> acc(numElements(wShape), 0.0);
  std::vector<int64_t> o, t;
  int64_t taps = numElements(kernel);
  for (int64_t linear = 0; linear < dy.numel(); ++linear) {
    unravel(linear, dy.shape(), o);
    int64_t n = o[0], m = o[1], g = m / outPerGroup;
    double grad = dy.getDouble(linear);
    for (int64_t ci = 0; ci < inPerGroup; ++ci) {
      int64_t xBase = n * xs[0] + (g * inPerGroup + ci) * xs[1];
      int64_t wBase = m * ws[0] + ci * ws[1];
      for (int64_t tap = 0; tap < taps; ++tap) {
        unravel(tap, kernel, t);
        int64_t xOff = xBase, wOff = wBase;
        bool inside = true;
        for (size_t d = 0; d < k && inside; ++d) {
          int64_t pos =
              o[d + 2] * win.strides[d] - win.pads[d] + t[d] * win.dilations[d];
          inside = pos >= 0 && pos < inSpatial[d];
          xOff += pos * xs[d + 2];
          wOff += t[d] * ws[d + 2];
        }
        if (inside)
          acc[wOff] += grad * x.getDouble(xOff);
      }
    }
  }
  Tensor out(ctx.storageType(op->getResult(0)), wShape);
  for (int64_t i = 0; i < out.numel(); ++i)
    out.setDouble(i, acc[i]);
  return out;
}

/// Routes each output gradient to the first maximum of its window, the
/// element nn.max_pool's `std::max` scan keeps.
FailureOr<Tensor> maxPoolGrad(Operation *op, ArrayRef<Tensor> in,
                              const EvalContext &ctx) {
  auto p = cast<nn::MaxPoolGradOp>(op);
  Window win{p.getStrides(), p.getPads(), p.getDilations()};
  Shape kernel(p.getKernelShape().begin(), p.getKernelShape().end());
  const Tensor &x = in[0], &dy = in[1];
  std::vector<double> acc(x.numel(), 0.0);
  std::vector<int64_t> o;
  for (int64_t linear = 0; linear < dy.numel(); ++linear) {
    unravel(linear, dy.shape(), o);
    double best = -std::numeric_limits<double>::infinity();
    int64_t at = -1;
    forEachTap(o, x.shape(), kernel, win, [&](bool inInput, bool, int64_t off) {
      if (inInput && (at < 0 || x.getDouble(off) > best)) {
        best = x.getDouble(off);
        at = off;
      }
    });
    if (at >= 0)
      acc[at] += dy.getDouble(linear);
  }
  Tensor out(ctx.storageType(op->getResult(0)), x.shape());
  for (int64_t i = 0; i < out.numel(); ++i)
    out.setDouble(i, acc[i]);
  return out;
}

/// Spreads each output gradient evenly over the input taps of its window,
/// with nn.avg_pool's divisor.
FailureOr<Tensor> avgPoolGrad(Operation *op, ArrayRef<Tensor> in,
                              const EvalContext &ctx) {
  auto p = cast<nn::AvgPoolGradOp>(op);
  Window win{p.getStrides(), p.getPads(), p.getDilations()};
  Shape kernel(p.getKernelShape().begin(), p.getKernelShape().end());
  bool countPad = p.getCountIncludePad();
  const Tensor &dy = in[0];
  Shape inShape = resultShape(op);
  std::vector<double> acc(numElements(inShape), 0.0);
  std::vector<int64_t> o, offsets;
  for (int64_t linear = 0; linear < dy.numel(); ++linear) {
    unravel(linear, dy.shape(), o);
    int64_t count = 0;
    offsets.clear();
    forEachTap(o, inShape, kernel, win,
               [&](bool inInput, bool inPadded, int64_t off) {
                 if (inInput)
                   offsets.push_back(off);
                 count += countPad ? inPadded : inInput;
               });
    if (count == 0)
      continue;
    double share = dy.getDouble(linear) / (double)count;
    for (int64_t off : offsets)
      acc[off] += share;
  }
  Tensor out(ctx.storageType(op->getResult(0)), inShape);
  for (int64_t i = 0; i < out.numel(); ++i)
    out.setDouble(i, acc[i]);
  return out;
}

} // namespace

void registerGradKernels(KernelRegistry &r) {
  r.add("nn.conv_weight_grad", singleResult(convWeightGrad));
  r.add("nn.max_pool_grad", singleResult(maxPoolGrad));
  r.add("nn.avg_pool_grad", singleResult(avgPoolGrad));
}

} // namespace peft::ref
