//===- ReductionKernels.cpp - reductions and arg-reductions ---------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/nn/NNOps.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace peft::ref {
namespace {

enum class ReduceKind { Sum, Mean, Prod, Max, Min };

/// For each element of `in`, the linear index of the result element it
/// reduces into. Dropping size-1 dims does not change a row-major layout, so
/// the keepdims shape serves both keepdims settings.
std::vector<int64_t> reductionTargets(const Shape &in, ArrayRef<int64_t> axes) {
  Shape kept = in;
  for (int64_t a : axes)
    kept[a] = 1;
  std::vector<int64_t> keptStrides = stridesOf(kept);
  std::vector<int64_t> targets(numElements(in));
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < (int64_t)targets.size(); ++i) {
    unravel(i, in, idx);
    int64_t t = 0;
    for (size_t d = 0; d < in.size(); ++d)
      if (kept[d] != 1)
        t += idx[d] * keptStrides[d];
    targets[i] = t;
  }
  return targets;
}

FailureOr<Tensor> reduce(Operation *op, ArrayRef<Tensor> in,
                         const EvalContext &ctx, ReduceKind kind,
                         ArrayRef<int64_t> axes) {
  const Tensor &x = in[0];
  Tensor y(ctx.storageType(op->getResult(0)), resultShape(op));
  std::vector<int64_t> targets = reductionTargets(x.shape(), axes);
  int64_t count = y.numel() ? x.numel() / y.numel() : 0;

  if (isFloat(x.dtype())) {
    double init = kind == ReduceKind::Prod  ? 1.0
                  : kind == ReduceKind::Max ? -INFINITY
                  : kind == ReduceKind::Min ? INFINITY
                                            : 0.0;
    std::vector<double> acc(y.numel(), init);
    for (int64_t i = 0; i < x.numel(); ++i) {
      double v = x.getDouble(i);
      double &a = acc[targets[i]];
      switch (kind) {
      case ReduceKind::Sum:
      case ReduceKind::Mean:
        a += v;
        break;
      case ReduceKind::Prod:
        a *= v;
        break;
      // NaN wins, as numpy's maximum/minimum reductions.
      case ReduceKind::Max:
        a = (std::isnan(v) || v > a) ? v : a;
        break;
      case ReduceKind::Min:
        a = (std::isnan(v) || v < a) ? v : a;
        break;
      }
    }
    for (int64_t o = 0; o < y.numel(); ++o)
      y.setDouble(o,
                  kind == ReduceKind::Mean ? acc[o] / (double)count : acc[o]);
    return y;
  }

  std::vector<int64_t> acc(y.numel(), kind == ReduceKind::Prod ? 1 : 0);
  std::vector<bool> seen(y.numel(), false);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t v = x.getInt(i);
    int64_t t = targets[i];
    switch (kind) {
    case ReduceKind::Sum:
    case ReduceKind::Mean:
      acc[t] += v;
      break;
    case ReduceKind::Prod:
      acc[t] *= v;
      break;
    case ReduceKind::Max:
      acc[t] = seen[t] ? std::max(acc[t], v) : v;
      break;
    case ReduceKind::Min:
      acc[t] = seen[t] ? std::min(acc[t], v) : v;
      break;
    }
    seen[t] = true;
  }
  for (int64_t o = 0; o < y.numel(); ++o) {
    if (!seen[o] && (kind == ReduceKind::Max || kind == ReduceKind::Min)) {
      // The max of nothing is the type's lowest value (ONNX opset 18);
      // setDouble saturates an infinity to exactly that.
      y.setDouble(o, kind == ReduceKind::Max ? -INFINITY : INFINITY);
      continue;
    }
    y.setInt(o,
             kind == ReduceKind::Mean ? (count ? acc[o] / count : 0) : acc[o]);
  }
  return y;
}

template <typename OpTy> Kernel reduceKernel(ReduceKind kind) {
  return singleResult([kind](Operation *op, ArrayRef<Tensor> in,
                             const EvalContext &ctx) -> FailureOr<Tensor> {
    return reduce(op, in, ctx, kind, cast<OpTy>(op).getAxes());
  });
}

/// Index of the max (or min) along `axis`; ties keep the first index unless
/// `lastIndex`. NaN counts as the extreme, as numpy's argmax/argmin.
FailureOr<Tensor> argReduce(Operation *op, const Tensor &x,
                            const EvalContext &ctx, int64_t axis,
                            bool lastIndex, bool isMax) {
  Tensor y(ctx.storageType(op->getResult(0)), resultShape(op));
  const Shape &shape = x.shape();
  int64_t len = shape[axis];
  int64_t inner = 1;
  for (size_t d = axis + 1; d < shape.size(); ++d)
    inner *= shape[d];
  int64_t outer = len ? x.numel() / (len * inner) : 0;
  bool floats = isFloat(x.dtype());
  // True when candidate `v` replaces the current best `b`.
  auto better = [&](int64_t vi, int64_t bi) {
    if (floats) {
      double v = x.getDouble(vi), b = x.getDouble(bi);
      if (std::isnan(b))
        return lastIndex && std::isnan(v);
      if (std::isnan(v))
        return true;
      return isMax ? (v > b || (lastIndex && v == b))
                   : (v < b || (lastIndex && v == b));
    }
    int64_t v = x.getInt(vi), b = x.getInt(bi);
    return isMax ? (v > b || (lastIndex && v == b))
                 : (v < b || (lastIndex && v == b));
  };
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t base = o * len * inner + i;
      int64_t best = 0;
      for (int64_t k = 1; k < len; ++k)
        if (better(base + k * inner, base + best * inner))
          best = k;
      y.setInt(o * inner + i, best);
    }
  return y;
}

template <typename OpTy> Kernel argKernel(bool isMax) {
  return singleResult([isMax](Operation *op, ArrayRef<Tensor> in,
                              const EvalContext &ctx) -> FailureOr<Tensor> {
    auto arg = cast<OpTy>(op);
    return argReduce(op, in[0], ctx, (int64_t)arg.getAxis(),
                     arg.getSelectLastIndex(), isMax);
  });
}

} // namespace

void registerReductionKernels(KernelRegistry &r) {
  r.add("nn.reduce_sum", reduceKernel<nn::ReduceSumOp>(ReduceKind::Sum));
  r.add("nn.reduce_mean", reduceKernel<nn::ReduceMeanOp>(ReduceKind::Mean));
  r.add("nn.reduce_prod", reduceKernel<nn::ReduceProdOp>(ReduceKind::Prod));
  r.add("nn.reduce_max", reduceKernel<nn::ReduceMaxOp>(ReduceKind::Max));
  r.add("nn.reduce_min", reduceKernel<nn::ReduceMinOp>(ReduceKind::Min));
  r.add("nn.argmax", argKernel<nn::ArgMaxOp>(/*isMax=*/true));
  r.add("nn.argmin", argKernel<nn::ArgMinOp>(/*isMax=*/false));
}

} // namespace peft::ref
