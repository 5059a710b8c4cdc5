//===- NormKernels.cpp - softmax and normalisation ------------------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/nn/NNOps.h"

#include <cmath>

using namespace mlir;

namespace peft::ref {
namespace {

/// A tensor seen as [outer, len, inner] around `axis`.
struct AxisView {
  int64_t outer = 1, len = 1, inner = 1;
  AxisView(const Shape &shape, int64_t axis) {
    for (int64_t d = 0; d < (int64_t)shape.size(); ++d)
      (d < axis ? outer : d == axis ? len : inner) *= shape[d];
  }
  int64_t at(int64_t o, int64_t k, int64_t i) const {
    return (o * len + k) * inner + i;
  }
};

/// Softmax (or log-softmax) along one axis, shifted by the row maximum so
/// exp never overflows.
Kernel softmaxKernel(bool logOutput) {
  return singleResult([logOutput](Operation *op, ArrayRef<Tensor> in,
                                  const EvalContext &ctx) -> FailureOr<Tensor> {
    const Tensor &x = in[0];
    int64_t axis = (int64_t)op->getAttrOfType<IntegerAttr>("axis").getInt();
    Tensor y(ctx.storageType(op->getResult(0)), x.shape());
    AxisView v(x.shape(), axis);
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i) {
        double m = -INFINITY;
        for (int64_t k = 0; k < v.len; ++k)
          m = std::max(m, x.getDouble(v.at(o, k, i)));
        double sum = 0;
        for (int64_t k = 0; k < v.len; ++k)
          sum += std::exp(x.getDouble(v.at(o, k, i)) - m);
        double logSum = std::log(sum);
        for (int64_t k = 0; k < v.len; ++k) {
          double shifted = x.getDouble(v.at(o, k, i)) - m;
          y.setDouble(v.at(o, k, i),
                      logOutput ? shifted - logSum : std::exp(shifted) / sum);
        }
      }
    return y;
  });
}

LogicalResult layerNorm(Operation *op, ArrayRef<Tensor> in,
                        SmallVectorImpl<Tensor> &out, const EvalContext &ctx) {
  auto ln = cast<nn::LayerNormOp>(op);
  const Tensor &x = in[0];
  const Tensor &scale = in[1];
  const Tensor *bias = ln.getBias() ? &in[2] : nullptr;
  int64_t axis = (int64_t)ln.getAxis();
  double epsilon = ln.getEpsilon().convertToDouble();

  Shape normalized(x.shape().begin() + axis, x.shape().end());
  int64_t rows = 1;
  for (int64_t d = 0; d < axis; ++d)
    rows *= x.shape()[d];
  int64_t cols = numElements(normalized);
  BroadcastMap scaleAt(scale.shape(), normalized);
  std::optional<BroadcastMap> biasAt;
  if (bias)
    biasAt.emplace(bias->shape(), normalized);

  Tensor y(ctx.storageType(ln.getResult()), x.shape());
  Tensor mean(ctx.storageType(ln.getMean()), resultShape(op, 1));
  Tensor invStd(ctx.storageType(ln.getInvStdDev()), resultShape(op, 2));
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c)
      sum += x.getDouble(r * cols + c);
    double mu = sum / (double)cols;
    // Two passes: the biased variance E[(x - mean)^2], not E[x^2] - mean^2,
    // which cancels badly when |mean| >> std.
    double sq = 0;
    for (int64_t c = 0; c < cols; ++c) {
      double d = x.getDouble(r * cols + c) - mu;
      sq += d * d;
    }
    double inv = 1.0 / std::sqrt(sq / (double)cols + epsilon);
    for (int64_t c = 0; c < cols; ++c) {
      double v =
          (x.getDouble(r * cols + c) - mu) * inv * scale.getDouble(scaleAt(c));
      if (bias)
        v += bias->getDouble((*biasAt)(c));
      y.setDouble(r * cols + c, v);
    }
    mean.setDouble(r, mu);
    invStd.setDouble(r, inv);
  }
  out.push_back(std::move(y));
  out.push_back(std::move(mean));
  out.push_back(std::move(invStd));
  return success();
}

} // namespace

void registerNormKernels(KernelRegistry &r) {
  r.add("nn.softmax", softmaxKernel(/*logOutput=*/false));
  r.add("nn.log_softmax", softmaxKernel(/*logOutput=*/true));
  r.add("nn.layer_norm", layerNorm);
}

} // namespace peft::ref
