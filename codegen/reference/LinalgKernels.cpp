//===- LinalgKernels.cpp - matmul, convolution, pooling, einsum -----------===//
//
// Direct loop nests over the index space of each op: slow, but each one reads
// like the ONNX definition it implements.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/nn/NNOps.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace peft::ref {
namespace {

/// numpy matmul with broadcast batch dims; 1-D operands are promoted. The
/// transpose flags swap the last two dims of an operand.
FailureOr<Tensor> matmul(Operation *op, ArrayRef<Tensor> in,
                         const EvalContext &ctx) {
  auto mm = cast<nn::MatMulOp>(op);
  bool transA = mm.getTransposeLhs(), transB = mm.getTransposeRhs();
  Shape as = in[0].shape(), bs = in[1].shape();
  if (as.size() == 1)
    as.insert(as.begin(), 1);
  if (bs.size() == 1)
    bs.push_back(1);
  // Stored extents of the last two dims, and the logical m, k, n.
  int64_t aRows = as[as.size() - 2], aCols = as.back();
  int64_t bRows = bs[bs.size() - 2], bCols = bs.back();
  int64_t m = transA ? aCols : aRows, k = transA ? aRows : aCols;
  int64_t n = transB ? bRows : bCols;
  Shape aBatch(as.begin(), as.end() - 2), bBatch(bs.begin(), bs.end() - 2);
  Shape batch(std::max(aBatch.size(), bBatch.size()), 1);
  for (size_t i = 0; i < batch.size(); ++i) {
    size_t ia = i + aBatch.size() - batch.size(),
           ib = i + bBatch.size() - batch.size();
    int64_t da = i >= batch.size() - aBatch.size() ? aBatch[ia] : 1;
    int64_t db = i >= batch.size() - bBatch.size() ? bBatch[ib] : 1;
    batch[i] = std::max(da, db);
  }
  BroadcastMap amap(aBatch, batch), bmap(bBatch, batch);
  Tensor out(ctx.storageType(op->getResult(0)), resultShape(op));
  int64_t batchCount = numElements(batch);
  bool isInt = !isFloat(in[0].dtype());
  for (int64_t bi = 0; bi < batchCount; ++bi) {
    int64_t aOff = amap(bi) * m * k, bOff = bmap(bi) * k * n;
    auto aAt = [&](int64_t i, int64_t p) {
      return aOff + (transA ? p * aCols + i : i * aCols + p);
    };
    auto bAt = [&](int64_t p, int64_t j) {
      return bOff + (transB ? j * bCols + p : p * bCols + j);
    };
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t o = (bi * m + i) * n + j;
        if (isInt) {
          int64_t acc = 0;
          for (int64_t p = 0; p < k; ++p)
            acc += in[0].getInt(aAt(i, p)) * in[1].getInt(bAt(p, j));
          out.setInt(o, acc);
        } else {
          double acc = 0;
          for (int64_t p = 0; p < k; ++p)
            acc += in[0].getDouble(aAt(i, p)) * in[1].getDouble(bAt(p, j));
          out.setDouble(o, acc);
        }
      }
  }
  return out;
}

/// Attributes of a sliding window over the spatial dims of [N, C, D...].
/// out[n, m, o...] = bias[m] + sum over the group's input channels c and
/// taps t of x[n, c, o*stride - pad + t*dilation] * w[m, c, t].
FailureOr<Tensor> conv(Operation *op, ArrayRef<Tensor> in,
                       const EvalContext &ctx) {
  auto c = cast<nn::ConvOp>(op);
  Window win{c.getStrides(), c.getPads(), c.getDilations()};
  const Tensor &x = in[0], &w = in[1];
  const Tensor *bias = in.size() > 2 ? &in[2] : nullptr;
  Shape outShape = resultShape(op);
  size_t k = win.rank();
  int64_t group = c.getGroupAttr().getValue().getSExtValue();
  int64_t outChannels = outShape[1], inPerGroup = w.shape()[1];
  int64_t outPerGroup = outChannels / group;
  Shape kernel(w.shape().begin() + 2, w.shape().end());
  Shape inSpatial(x.shape().begin() + 2, x.shape().end());
  std::vector<int64_t> xs = stridesOf(x.shape()), ws = stridesOf(w.shape());

  Tensor out(ctx.storageType(op->getResult(0)), outShape);
  std::vector<int64_t> o, t;
  int64_t taps = numElements(kernel);
  for (int64_t linear = 0; linear < out.numel(); ++linear) {
    unravel(linear, outShape, o);
    int64_t n = o[0], m = o[1], g = m / outPerGroup;
    double acc = bias ? bias->getDouble(m) : 0.0;
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
          acc += x.getDouble(xOff) * w.getDouble(wOff);
      }
    }
    out.setDouble(linear, acc);
  }
  return out;
}

/// Scatters each input element through the kernel:
/// out[n, m, i*stride - pad + t*dilation] += x[n, c, i] * w[c, m, t] for the
/// input channels c of m's group, then adds the bias.
FailureOr<Tensor> convTranspose(Operation *op, ArrayRef<Tensor> in,
                                const EvalContext &ctx) {
  auto c = cast<nn::ConvTransposeOp>(op);
  Window win{c.getStrides(), c.getPads(), c.getDilations()};
  const Tensor &x = in[0], &w = in[1];
  const Tensor *bias = in.size() > 2 ? &in[2] : nullptr;
  Shape outShape = resultShape(op);
  size_t k = win.rank();
  int64_t group = c.getGroupAttr().getValue().getSExtValue();
  int64_t inPerGroup = x.shape()[1] / group, outPerGroup = w.shape()[1];
  Shape kernel(w.shape().begin() + 2, w.shape().end());
  std::vector<int64_t> os = stridesOf(outShape), ws = stridesOf(w.shape());

  std::vector<double> acc(numElements(outShape), 0.0);
  std::vector<int64_t> i, t;
  int64_t taps = numElements(kernel);
  for (int64_t linear = 0; linear < x.numel(); ++linear) {
    unravel(linear, x.shape(), i);
    int64_t n = i[0], ch = i[1], g = ch / inPerGroup;
    double xv = x.getDouble(linear);
    for (int64_t mi = 0; mi < outPerGroup; ++mi) {
      int64_t m = g * outPerGroup + mi;
      for (int64_t tap = 0; tap < taps; ++tap) {
        unravel(tap, kernel, t);
        int64_t oOff = n * os[0] + m * os[1], wOff = ch * ws[0] + mi * ws[1];
        bool inside = true;
        for (size_t d = 0; d < k && inside; ++d) {
          int64_t pos =
              i[d + 2] * win.strides[d] - win.pads[d] + t[d] * win.dilations[d];
          inside = pos >= 0 && pos < outShape[d + 2];
          oOff += pos * os[d + 2];
          wOff += t[d] * ws[d + 2];
        }
        if (inside)
          acc[oOff] += xv * w.getDouble(wOff);
      }
    }
  }
  Tensor out(ctx.storageType(op->getResult(0)), outShape);
  for (int64_t linear = 0; linear < out.numel(); ++linear)
    out.setDouble(linear, acc[linear] + (bias ? bias->getDouble(linear / os[1] %
                                                                outShape[1])
                                              : 0.0));
  return out;
}

FailureOr<Tensor> maxPool(Operation *op, ArrayRef<Tensor> in,
                          const EvalContext &ctx) {
  auto p = cast<nn::MaxPoolOp>(op);
  Window win{p.getStrides(), p.getPads(), p.getDilations()};
  Shape kernel(p.getKernelShape().begin(), p.getKernelShape().end());
  const Tensor &x = in[0];
  Shape outShape = resultShape(op);
  Tensor out(ctx.storageType(op->getResult(0)), outShape);
  bool isInt = !isFloat(x.dtype());
  std::vector<int64_t> o;
  for (int64_t linear = 0; linear < out.numel(); ++linear) {
    unravel(linear, outShape, o);
    // Padding never wins: a window entirely in the padding (possible only
    // with pads wider than the kernel) yields the type's lowest value.
    double best = -std::numeric_limits<double>::infinity();
    int64_t bestInt = std::numeric_limits<int64_t>::min();
    bool any = false;
    forEachTap(o, x.shape(), kernel, win, [&](bool inInput, bool, int64_t off) {
      if (!inInput)
        return;
      any = true;
      if (isInt)
        bestInt = std::max(bestInt, x.getInt(off));
      else
        best = std::max(best, x.getDouble(off));
    });
    if (isInt)
      out.setInt(linear, any ? bestInt : 0);
    else
      out.setDouble(linear, best);
  }
  return out;
}

FailureOr<Tensor> avgPool(Operation *op, ArrayRef<Tensor> in,
                          const EvalContext &ctx) {
  auto p = cast<nn::AvgPoolOp>(op);
  Window win{p.getStrides(), p.getPads(), p.getDilations()};
  Shape kernel(p.getKernelShape().begin(), p.getKernelShape().end());
  bool countPad = p.getCountIncludePad();
  const Tensor &x = in[0];
  Shape outShape = resultShape(op);
  Tensor out(ctx.storageType(op->getResult(0)), outShape);
  std::vector<int64_t> o;
  for (int64_t linear = 0; linear < out.numel(); ++linear) {
    unravel(linear, outShape, o);
    double sum = 0;
    int64_t count = 0;
    forEachTap(o, x.shape(), kernel, win,
               [&](bool inInput, bool inPadded, int64_t off) {
                 if (inInput)
                   sum += x.getDouble(off);
                 count += countPad ? inPadded : inInput;
               });
    out.setDouble(linear, count ? sum / count
                                : std::numeric_limits<double>::quiet_NaN());
  }
  return out;
}

/// Sums the product of the operands over every label assignment that agrees
/// with the output index. An operand's offset is a sum of per-label strides,
/// so a label repeated within an operand walks its diagonal and a broadcast
/// `...` dim of extent 1 has stride 0.
FailureOr<Tensor> einsum(Operation *op, ArrayRef<Tensor> in,
                         const EvalContext &ctx) {
  auto e = cast<nn::EinsumOp>(op);
  SmallVector<ArrayRef<int64_t>> shapes;
  for (const Tensor &t : in)
    shapes.push_back(t.shape());
  FailureOr<nn::EinsumOp::Equation> eq =
      nn::EinsumOp::resolveEquation(op->getLoc(), e.getEquation(), shapes);
  if (failed(eq))
    return failure();

  // Output labels first, then the summed ones.
  SmallVector<unsigned> order(eq->resultLabels);
  for (const auto &labels : eq->operandLabels)
    for (unsigned l : labels)
      if (!llvm::is_contained(order, l))
        order.push_back(l);
  size_t outRank = eq->resultLabels.size();
  Shape outShape, sumShape;
  for (size_t i = 0; i < order.size(); ++i)
    (i < outRank ? outShape : sumShape).push_back(eq->sizes[order[i]]);

  // labelStride[operand][i]: stride of label order[i] in that operand.
  std::vector<std::vector<int64_t>> labelStride(
      in.size(), std::vector<int64_t>(order.size(), 0));
  for (size_t a = 0; a < in.size(); ++a) {
    std::vector<int64_t> strides = stridesOf(in[a].shape());
    for (auto [d, label] : llvm::enumerate(eq->operandLabels[a])) {
      if (in[a].shape()[d] == 1)
        continue;
      size_t pos = llvm::find(order, label) - order.begin();
      labelStride[a][pos] += strides[d];
    }
  }

  Tensor out(ctx.storageType(op->getResult(0)), outShape);
  bool isInt = !isFloat(in[0].dtype());
  std::vector<int64_t> oi, si;
  int64_t sumCount = numElements(sumShape);
  for (int64_t linear = 0; linear < out.numel(); ++linear) {
    unravel(linear, outShape, oi);
    double acc = 0;
    int64_t accInt = 0;
    for (int64_t s = 0; s < sumCount; ++s) {
      unravel(s, sumShape, si);
      double prod = 1;
      int64_t prodInt = 1;
      for (size_t a = 0; a < in.size(); ++a) {
        int64_t off = 0;
        for (size_t i = 0; i < order.size(); ++i)
          off += (i < outRank ? oi[i] : si[i - outRank]) * labelStride[a][i];
        if (isInt)
          prodInt *= in[a].getInt(off);
        else
          prod *= in[a].getDouble(off);
      }
      acc += prod;
      accInt += prodInt;
    }
    if (isInt)
      out.setInt(linear, accInt);
    else
      out.setDouble(linear, acc);
  }
  return out;
}

} // namespace

void registerLinalgKernels(KernelRegistry &r) {
  r.add("nn.matmul", singleResult(matmul));
  r.add("nn.conv", singleResult(conv));
  r.add("nn.conv_transpose", singleResult(convTranspose));
  r.add("nn.max_pool", singleResult(maxPool));
  r.add("nn.avg_pool", singleResult(avgPool));
  r.add("nn.einsum", singleResult(einsum));
}

} // namespace peft::ref
