//===- Reduction.cpp - Reduce*, ArgMax, ArgMin ----------------------------===//
//
// ReduceSum/Mean/Max/Min/Prod map onto the nn reduce ops; ReduceL1, ReduceL2,
// ReduceSumSquare, ReduceLogSum and ReduceLogSumExp are decomposed into them
// and elementwise ops. Axes are an attribute up to opset 17 (ReduceSum: 12)
// and an input after; they are normalised here (sorted, non-negative), and
// empty axes mean "all axes" unless noop_with_empty_axes, which reduces over
// nothing (the formula is then applied elementwise, as ONNX's reference does).
//
//===----------------------------------------------------------------------===//
#include "frontends/onnx/handlers/OpChain.h"

using namespace mlir;

namespace peft::onnx_import {
namespace {

enum class Reduce {
  Sum,
  Mean,
  Max,
  Min,
  Prod,
  L1,
  L2,
  SumSquare,
  LogSum,
  LogSumExp
};

/// The node's axes, sorted and non-negative. Empty axes mean all axes unless
/// noop_with_empty_axes is set.
FailureOr<SmallVector<int64_t>>
reductionAxes(NodeContext &n, bool axesFromInput, int64_t rank) {
  std::vector<int64_t> raw;
  if (axesFromInput) {
    if (n.hasInput(1)) {
      auto v = n.constantInts(1, "axes");
      if (failed(v))
        return failure();
      raw = *v;
    }
  } else {
    raw = n.attrInts("axes");
  }
  SmallVector<int64_t> axes;
  if (raw.empty()) {
    if (n.attrInt("noop_with_empty_axes", 0) == 0)
      for (int64_t d = 0; d < rank; ++d)
        axes.push_back(d);
    return axes;
  }
  SmallVector<bool> seen(rank, false);
  for (int64_t axis : raw) {
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank)
      return n.error() << "axis " << axis << " is out of range for rank "
                       << rank;
    if (seen[a])
      return n.error() << "axis " << axis << " appears more than once";
    seen[a] = true;
  }
  for (int64_t d = 0; d < rank; ++d)
    if (seen[d])
      axes.push_back(d);
  return axes;
}

/// log(sum(exp(x))) shifted by the max so exp cannot overflow; an infinite
/// max is not subtracted (it would give inf - inf), as PyTorch and ONNX's
/// reference do.
Value logSumExp(OpChain &c, Value x, ArrayRef<int64_t> axes) {
  OpBuilder &b = c.builder();
  Value max = c.reduce<nn::ReduceMaxOp>(x, axes, /*keepdims=*/true);
  Value infinite = c.op<nn::IsInfOp>(
      {max}, {b.getNamedAttr("detect_negative", b.getBoolAttr(true)),
              b.getNamedAttr("detect_positive", b.getBoolAttr(true))});
  Value shift = c.op<nn::WhereOp>({infinite, c.scalar(x, 0.0), max});
  Value exps = c.op<nn::ExpOp>({c.op<nn::SubOp>({x, shift})});
  Value sum = c.reduce<nn::ReduceSumOp>(exps, axes, /*keepdims=*/true);
  return c.op<nn::AddOp>({c.op<nn::LogOp>({sum}), shift});
}

Handler reduceHandler(Reduce kind, bool axesFromInput) {
  return [kind, axesFromInput](NodeContext &n) -> LogicalResult {
    if (failed(n.requireInputs(1)))
      return failure();
    Value x = n.input(0);
    RankedTensorType type = n.inputType(0);
    auto axes = reductionAxes(n, axesFromInput, type.getRank());
    if (failed(axes))
      return failure();
    bool keepdims = n.attrInt("keepdims", 1) != 0;

    OpChain c(n);
    // Formulas with log or sqrt run in f64 for integer inputs and truncate
    // back, as numpy's astype does in ONNX's reference.
    bool needsFloat = kind == Reduce::L2 || kind == Reduce::LogSum ||
                      kind == Reduce::LogSumExp;
    Type elementType = type.getElementType();
    if (needsFloat && !isa<FloatType>(elementType))
      x = c.castTo(x, Float64Type::get(n.context()));

    Value y;
    switch (kind) {
    case Reduce::Sum:
      y = c.reduce<nn::ReduceSumOp>(x, *axes, keepdims);
      break;
    case Reduce::Mean:
      y = c.reduce<nn::ReduceMeanOp>(x, *axes, keepdims);
      break;
    case Reduce::Max:
      y = c.reduce<nn::ReduceMaxOp>(x, *axes, keepdims);
      break;
    case Reduce::Min:
      y = c.reduce<nn::ReduceMinOp>(x, *axes, keepdims);
      break;
    case Reduce::Prod:
      y = c.reduce<nn::ReduceProdOp>(x, *axes, keepdims);
      break;
    case Reduce::L1:
      y = c.reduce<nn::ReduceSumOp>(c.op<nn::AbsOp>({x}), *axes, keepdims);
      break;
    case Reduce::L2:
      y = c.op<nn::SqrtOp>({c.reduce<nn::ReduceSumOp>(c.op<nn::MulOp>({x, x}),
                                                      *axes, keepdims)});
      break;
    case Reduce::SumSquare:
      y = c.reduce<nn::ReduceSumOp>(c.op<nn::MulOp>({x, x}), *axes, keepdims);
      break;
    case Reduce::LogSum:
      y = c.op<nn::LogOp>({c.reduce<nn::ReduceSumOp>(x, *axes, keepdims)});
      break;
    case Reduce::LogSumExp: {
      // Built with kept dims (the shift broadcasts against x), then reshaped.
      Value kept = logSumExp(c, x, *axes);
      SmallVector<int64_t> shape;
      for (int64_t d = 0; d < type.getRank(); ++d)
        if (!llvm::is_contained(*axes, d))
          shape.push_back(type.getDimSize(d));
        else if (keepdims)
          shape.push_back(1);
      y = c.reshape(kept, shape);
      break;
    }
    }
    return c.setResult(0, c.castTo(y, elementType));
  };
}

template <typename OpTy> Handler argHandler() {
  return [](NodeContext &n) -> LogicalResult {
    if (failed(n.requireInputs(1)))
      return failure();
    int64_t rank = n.inputType(0).getRank();
    int64_t axis = n.attrInt("axis", 0);
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank)
      return n.error() << "axis " << axis << " is out of range for rank "
                       << rank;
    OpBuilder &b = n.builder();
    SmallVector<NamedAttribute> attrs{
        b.getNamedAttr("axis", b.getI64IntegerAttr(a))};
    if (n.attrInt("keepdims", 1) != 0)
      attrs.push_back(b.getNamedAttr("keepdims", b.getUnitAttr()));
    if (n.attrInt("select_last_index", 0) != 0)
      attrs.push_back(b.getNamedAttr("select_last_index", b.getUnitAttr()));
    auto v = n.create<OpTy>({n.input(0)}, attrs);
    if (failed(v))
      return failure();
    n.setResult(0, *v);
    return success();
  };
}

} // namespace

void registerReductionHandlers(HandlerRegistry &r) {
  // Opset 13 is the oldest the importer sees (older models are upgraded).
  r.add("", "ReduceSum", 13,
        reduceHandler(Reduce::Sum, /*axesFromInput=*/true));
  const std::pair<const char *, Reduce> attrUntil18[] = {
      {"ReduceMean", Reduce::Mean},
      {"ReduceMax", Reduce::Max},
      {"ReduceMin", Reduce::Min},
      {"ReduceProd", Reduce::Prod},
      {"ReduceL1", Reduce::L1},
      {"ReduceL2", Reduce::L2},
      {"ReduceSumSquare", Reduce::SumSquare},
      {"ReduceLogSum", Reduce::LogSum},
      {"ReduceLogSumExp", Reduce::LogSumExp}};
  for (auto [opType, kind] : attrUntil18) {
    r.add("", opType, 13, reduceHandler(kind, /*axesFromInput=*/false));
    r.add("", opType, 18, reduceHandler(kind, /*axesFromInput=*/true));
  }
  r.add("", "ArgMax", 13, argHandler<nn::ArgMaxOp>());
  r.add("", "ArgMin", 13, argHandler<nn::ArgMinOp>());
}

} // namespace peft::onnx_import
