//===- Linalg.cpp - MatMul, Gemm, Conv, ConvTranspose, pooling, Einsum ----===//
#include "frontends/onnx/NodeImport.h"

#include "dialects/nn/NNOps.h"

#include "llvm/ADT/StringExtras.h"

using namespace mlir;

namespace peft::onnx_import {
namespace {

LogicalResult finish(NodeContext &n, FailureOr<Value> v) {
  if (failed(v))
    return failure();
  n.setResult(0, *v);
  return success();
}

LogicalResult importMatMul(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  return finish(n, n.create<nn::MatMulOp>({n.input(0), n.input(1)}));
}

/// Y = alpha * op(A) op(B) + beta * C as a matmul carrying the transposes,
/// then scaling and the (unidirectionally broadcast) C term.
LogicalResult importGemm(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  if (n.inputType(0).getRank() != 2 || n.inputType(1).getRank() != 2)
    return n.error() << "A and B must be matrices";
  Builder b(n.context());
  SmallVector<NamedAttribute> attrs;
  if (n.attrInt("transA", 0))
    attrs.push_back(b.getNamedAttr("transpose_lhs", b.getBoolAttr(true)));
  if (n.attrInt("transB", 0))
    attrs.push_back(b.getNamedAttr("transpose_rhs", b.getBoolAttr(true)));
  FailureOr<Value> y = n.create<nn::MatMulOp>({n.input(0), n.input(1)}, attrs);
  if (failed(y))
    return failure();
  double alpha = n.attrFloat("alpha", 1.0), beta = n.attrFloat("beta", 1.0);
  if (alpha != 1.0) {
    y = n.create<nn::MulOp>({*y, n.scalarLike(*y, alpha)});
    if (failed(y))
      return failure();
  }
  if (!n.hasInput(2) || beta == 0.0)
    return finish(n, y);
  FailureOr<Value> c = n.input(2);
  if (beta != 1.0)
    c = n.create<nn::MulOp>({*c, n.scalarLike(*c, beta)});
  if (failed(c))
    return failure();
  Type product = y->getType();
  y = n.create<nn::AddOp>({*y, *c});
  if (failed(y))
    return failure();
  if (y->getType() != product)
    return n.error() << "C of type " << n.inputType(2)
                     << " does not broadcast to the product " << product;
  return finish(n, y);
}

/// Strides, dilations and explicit pads of a sliding window over `inSpatial`
/// with the given kernel, from the node's strides/dilations/pads/auto_pad.
struct WindowAttrs {
  std::vector<int64_t> strides, pads, dilations;
};

FailureOr<WindowAttrs> windowAttrs(NodeContext &n, ArrayRef<int64_t> inSpatial,
                                   ArrayRef<int64_t> kernel) {
  size_t k = inSpatial.size();
  WindowAttrs w;
  auto ints = [&](StringRef name, size_t count,
                  int64_t def) -> FailureOr<std::vector<int64_t>> {
    std::vector<int64_t> v = n.attrInts(name);
    if (!n.hasAttr(name))
      v.assign(count, def);
    if (v.size() != count)
      return n.error() << "'" << name << "' has " << v.size()
                       << " values, expected " << count;
    return v;
  };
  auto strides = ints("strides", k, 1), dilations = ints("dilations", k, 1);
  if (failed(strides) || failed(dilations))
    return failure();
  w.strides = *strides;
  w.dilations = *dilations;
  for (size_t d = 0; d < k; ++d)
    if (w.strides[d] < 1 || w.dilations[d] < 1)
      return n.error() << "strides and dilations must be >= 1";

  std::string autoPad = n.attrString("auto_pad", "NOTSET");
  if (autoPad == "NOTSET") {
    auto pads = ints("pads", 2 * k, 0);
    if (failed(pads))
      return failure();
    w.pads = *pads;
  } else if (autoPad == "VALID") {
    w.pads.assign(2 * k, 0);
  } else if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
    // The output keeps ceil(in / stride) positions; the odd pad goes to the
    // end for SAME_UPPER and to the beginning for SAME_LOWER.
    w.pads.assign(2 * k, 0);
    for (size_t d = 0; d < k; ++d) {
      int64_t out = (inSpatial[d] + w.strides[d] - 1) / w.strides[d];
      int64_t total = std::max<int64_t>(
          0, (out - 1) * w.strides[d] + (kernel[d] - 1) * w.dilations[d] + 1 -
                 inSpatial[d]);
      int64_t small = total / 2, large = total - small;
      w.pads[d] = autoPad == "SAME_UPPER" ? small : large;
      w.pads[d + k] = autoPad == "SAME_UPPER" ? large : small;
    }
  } else {
    return n.error() << "invalid auto_pad '" << autoPad << "'";
  }
  return w;
}

/// The spatial extents of input `i` ([N, C, D1...]).
FailureOr<SmallVector<int64_t>> spatialDims(NodeContext &n, unsigned i) {
  RankedTensorType t = n.inputType(i);
  if (t.getRank() < 3)
    return n.error() << "input must be [N, C, D1, ...], got " << t;
  return SmallVector<int64_t>(t.getShape().drop_front(2));
}

/// The kernel extents given by weight `w`; a kernel_shape attribute must
/// agree with them.
FailureOr<SmallVector<int64_t>> weightKernel(NodeContext &n, unsigned w,
                                             size_t spatialRank) {
  RankedTensorType t = n.inputType(w);
  if ((size_t)t.getRank() != spatialRank + 2)
    return n.error() << "weight " << t << " does not match an input with "
                     << spatialRank << " spatial dims";
  SmallVector<int64_t> kernel(t.getShape().drop_front(2));
  if (n.hasAttr("kernel_shape") &&
      ArrayRef<int64_t>(n.attrInts("kernel_shape")) != ArrayRef(kernel))
    return n.error() << "kernel_shape differs from the weight's shape " << t;
  return kernel;
}

SmallVector<Value> presentInputs(NodeContext &n, unsigned count) {
  SmallVector<Value> v;
  for (unsigned i = 0; i < count && n.hasInput(i); ++i)
    v.push_back(n.input(i));
  return v;
}

LogicalResult importConv(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto spatial = spatialDims(n, 0);
  if (failed(spatial))
    return failure();
  auto kernel = weightKernel(n, 1, spatial->size());
  if (failed(kernel))
    return failure();
  auto win = windowAttrs(n, *spatial, *kernel);
  if (failed(win))
    return failure();
  Builder b(n.context());
  SmallVector<Value> operands{n.input(0), n.input(1)};
  if (n.hasInput(2))
    operands.push_back(n.input(2));
  return finish(
      n,
      n.create<nn::ConvOp>(
          operands,
          {b.getNamedAttr("strides", b.getDenseI64ArrayAttr(win->strides)),
           b.getNamedAttr("pads", b.getDenseI64ArrayAttr(win->pads)),
           b.getNamedAttr("dilations", b.getDenseI64ArrayAttr(win->dilations)),
           b.getNamedAttr("group",
                          b.getI64IntegerAttr(n.attrInt("group", 1)))}));
}

LogicalResult importConvTranspose(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto spatial = spatialDims(n, 0);
  if (failed(spatial))
    return failure();
  auto kernel = weightKernel(n, 1, spatial->size());
  if (failed(kernel))
    return failure();
  size_t k = spatial->size();
  // Strides and dilations as for Conv; pads are resolved below, since
  // auto_pad means something else for a transposed convolution.
  std::string autoPad = n.attrString("auto_pad", "NOTSET");
  auto win = windowAttrs(n, *spatial, *kernel);
  if (failed(win))
    return failure();
  std::vector<int64_t> outputPadding = n.attrInts("output_padding");
  if (!n.hasAttr("output_padding"))
    outputPadding.assign(k, 0);
  if (outputPadding.size() != k)
    return n.error() << "'output_padding' has " << outputPadding.size()
                     << " values, expected " << k;

  std::vector<int64_t> outputShape = n.attrInts("output_shape");
  if (outputShape.size() == k + 2)
    outputShape.erase(outputShape.begin(), outputShape.begin() + 2);
  bool same = autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER";
  if (outputShape.empty() && same)
    for (size_t d = 0; d < k; ++d)
      outputShape.push_back((*spatial)[d] * win->strides[d]);
  if (!outputShape.empty()) {
    if (outputShape.size() != k)
      return n.error() << "'output_shape' has " << outputShape.size()
                       << " values, expected " << k;
    // Pads that crop the full output to output_shape; an output larger than
    // the full one is extended at the end, as output_padding would.
    for (size_t d = 0; d < k; ++d) {
      int64_t full = win->strides[d] * ((*spatial)[d] - 1) + outputPadding[d] +
                     (((*kernel)[d] - 1) * win->dilations[d] + 1);
      int64_t total = full - outputShape[d];
      if (total < 0) {
        outputPadding[d] -= total;
        total = 0;
      }
      int64_t small = total / 2, large = total - small;
      bool upper = autoPad == "SAME_UPPER";
      win->pads[d] = upper ? small : large;
      win->pads[d + k] = upper ? large : small;
    }
  } else if (autoPad == "VALID" || same) {
    win->pads.assign(2 * k, 0);
  }

  Builder b(n.context());
  SmallVector<Value> operands{n.input(0), n.input(1)};
  if (n.hasInput(2))
    operands.push_back(n.input(2));
  return finish(
      n,
      n.create<nn::ConvTransposeOp>(
          operands,
          {b.getNamedAttr("strides", b.getDenseI64ArrayAttr(win->strides)),
           b.getNamedAttr("pads", b.getDenseI64ArrayAttr(win->pads)),
           b.getNamedAttr("dilations", b.getDenseI64ArrayAttr(win->dilations)),
           b.getNamedAttr("output_padding",
                          b.getDenseI64ArrayAttr(outputPadding)),
           b.getNamedAttr("group",
                          b.getI64IntegerAttr(n.attrInt("group", 1)))}));
}

/// MaxPool and AveragePool: kernel_shape from the attribute, window as Conv.
template <typename PoolOp>
LogicalResult importPool(NodeContext &n, bool average) {
  if (failed(n.requireInputs(1)))
    return failure();
  if (!average && n.numOutputs() > 1 && !n.node().output(1).empty())
    return n.error() << "MaxPool's Indices output is not supported";
  auto spatial = spatialDims(n, 0);
  if (failed(spatial))
    return failure();
  std::vector<int64_t> kernel = n.attrInts("kernel_shape");
  if (kernel.size() != spatial->size())
    return n.error() << "'kernel_shape' must give " << spatial->size()
                     << " extents";
  auto win = windowAttrs(n, *spatial, kernel);
  if (failed(win))
    return failure();
  Builder b(n.context());
  SmallVector<NamedAttribute> attrs{
      b.getNamedAttr("kernel_shape", b.getDenseI64ArrayAttr(kernel)),
      b.getNamedAttr("strides", b.getDenseI64ArrayAttr(win->strides)),
      b.getNamedAttr("pads", b.getDenseI64ArrayAttr(win->pads)),
      b.getNamedAttr("dilations", b.getDenseI64ArrayAttr(win->dilations))};
  if (n.attrInt("ceil_mode", 0))
    attrs.push_back(b.getNamedAttr("ceil_mode", b.getBoolAttr(true)));
  if (average && n.attrInt("count_include_pad", 0))
    attrs.push_back(b.getNamedAttr("count_include_pad", b.getBoolAttr(true)));
  return finish(n, n.create<PoolOp>({n.input(0)}, attrs));
}

/// GlobalMaxPool / GlobalAveragePool: one window over all spatial dims.
template <typename PoolOp> LogicalResult importGlobalPool(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto spatial = spatialDims(n, 0);
  if (failed(spatial))
    return failure();
  size_t k = spatial->size();
  Builder b(n.context());
  return finish(
      n,
      n.create<PoolOp>(
          {n.input(0)},
          {b.getNamedAttr("kernel_shape", b.getDenseI64ArrayAttr(*spatial)),
           b.getNamedAttr("strides",
                          b.getDenseI64ArrayAttr(SmallVector<int64_t>(k, 1))),
           b.getNamedAttr(
               "pads", b.getDenseI64ArrayAttr(SmallVector<int64_t>(2 * k, 0))),
           b.getNamedAttr("dilations", b.getDenseI64ArrayAttr(
                                           SmallVector<int64_t>(k, 1)))}));
}

LogicalResult importEinsum(NodeContext &n) {
  if (n.numInputs() == 0)
    return n.error() << "expects at least one input";
  if (failed(n.requireInputs(n.numInputs())))
    return failure();
  // Whitespace is insignificant; drop it so the IR shows one spelling.
  std::string equation;
  for (char c : n.attrString("equation", ""))
    if (!llvm::isSpace(c))
      equation += c;
  Builder b(n.context());
  return finish(n,
                n.create<nn::EinsumOp>(
                    presentInputs(n, n.numInputs()),
                    {b.getNamedAttr("equation", b.getStringAttr(equation))}));
}

} // namespace

void registerLinalgHandlers(HandlerRegistry &r) {
  r.add("", "MatMul", 1, importMatMul);
  r.add("", "Gemm", 1, importGemm);
  r.add("", "Conv", 1, importConv);
  r.add("", "ConvTranspose", 1, importConvTranspose);
  r.add("", "MaxPool", 1, [](NodeContext &n) {
    return importPool<nn::MaxPoolOp>(n, /*average=*/false);
  });
  r.add("", "AveragePool", 1, [](NodeContext &n) {
    return importPool<nn::AvgPoolOp>(n, /*average=*/true);
  });
  r.add("", "GlobalMaxPool", 1, importGlobalPool<nn::MaxPoolOp>);
  r.add("", "GlobalAveragePool", 1, importGlobalPool<nn::AvgPoolOp>);
  r.add("", "Einsum", 1, importEinsum);
}

} // namespace peft::onnx_import
