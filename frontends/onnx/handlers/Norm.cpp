//===- Norm.cpp - softmax and normalisation -------------------------------===//
//
// Softmax, LogSoftmax and LayerNormalization become nn ops of their own
// (fused and differentiated as a unit later). Hardmax, BatchNormalization
// (inference mode), InstanceNormalization, GroupNormalization,
// MeanVarianceNormalization and LpNormalization are decomposed into
// reductions and elementwise ops. Variances are the biased (population)
// variance E[(x - mean)^2], computed from the centred values.
//
//===----------------------------------------------------------------------===//
#include "frontends/onnx/handlers/OpChain.h"

using namespace mlir;

namespace peft::onnx_import {
namespace {

/// Normalises `axis` for `rank`, reporting an out-of-range axis at the node.
FailureOr<int64_t> axisAt(NodeContext &n, int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    return n.error() << "axis " << axis << " is out of range for rank " << rank;
  return a;
}

/// Axes [from, rank).
SmallVector<int64_t> trailingAxes(int64_t from, int64_t rank) {
  return llvm::to_vector(llvm::seq<int64_t>(from, rank));
}

/// (x - mean) / sqrt(var + epsilon) over `axes`, with var the biased
/// variance of the centred values.
Value standardize(OpChain &c, Value x, ArrayRef<int64_t> axes, double epsilon) {
  Value mean = c.reduce<nn::ReduceMeanOp>(x, axes, /*keepdims=*/true);
  Value centred = c.op<nn::SubOp>({x, mean});
  Value var = c.reduce<nn::ReduceMeanOp>(c.op<nn::MulOp>({centred, centred}),
                                         axes, /*keepdims=*/true);
  Value std = c.op<nn::SqrtOp>({c.op<nn::AddOp>({var, c.scalar(x, epsilon)})});
  return c.op<nn::DivOp>({centred, std});
}

/// A per-channel parameter of shape [C] reshaped to [C, 1, ..., 1] so it
/// broadcasts against an [N, C, D1, ...] input of rank `rank`.
Value perChannel(NodeContext &n, OpChain &c, unsigned input, StringRef role,
                 int64_t channels, int64_t rank) {
  if (c.failed())
    return nullptr;
  RankedTensorType type = n.inputType(input);
  if (type.getRank() != 1 || type.getDimSize(0) != channels) {
    n.error() << "the '" << role << "' input must have shape [" << channels
              << "], it is " << type;
    c.markFailed();
    return nullptr;
  }
  SmallVector<int64_t> shape(rank - 1, 1);
  shape[0] = channels;
  return c.reshape(n.input(input), shape);
}

/// Inputs of the form [N, C, D1, ...] need rank >= 2.
LogicalResult requireChannels(NodeContext &n) {
  if (n.inputType(0).getRank() < 2)
    return n.error() << "expects an input of rank >= 2 ([N, C, ...]), got "
                     << n.inputType(0);
  return success();
}

template <typename OpTy> LogicalResult importSoftmax(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto axis = axisAt(n, n.attrInt("axis", -1), n.inputType(0).getRank());
  if (failed(axis))
    return failure();
  auto v = n.create<OpTy>(
      {n.input(0)},
      {n.builder().getNamedAttr("axis", n.builder().getI64IntegerAttr(*axis))});
  if (failed(v))
    return failure();
  n.setResult(0, *v);
  return success();
}

/// 1 where the (first) maximum along the axis is, 0 elsewhere: argmax
/// compared with the positions 0..len-1 along the axis.
LogicalResult importHardmax(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  RankedTensorType type = n.inputType(0);
  auto axis = axisAt(n, n.attrInt("axis", -1), type.getRank());
  if (failed(axis))
    return failure();
  OpChain c(n);
  OpBuilder &b = n.builder();
  Value argmax = c.op<nn::ArgMaxOp>(
      {n.input(0)}, {b.getNamedAttr("axis", b.getI64IntegerAttr(*axis)),
                     b.getNamedAttr("keepdims", b.getUnitAttr())});
  Shape positionsShape(type.getRank(), 1);
  positionsShape[*axis] = type.getDimSize(*axis);
  Tensor positions(DType::I64, positionsShape);
  for (int64_t i = 0; i < positions.numel(); ++i)
    positions.setInt(i, i);
  Value isMax = c.op<nn::EqualOp>({argmax, n.constant(positions)});
  return c.setResult(0, c.castTo(isMax, type.getElementType()));
}

LogicalResult importLayerNorm(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto axis = axisAt(n, n.attrInt("axis", -1), n.inputType(0).getRank());
  if (failed(axis))
    return failure();
  Type stashType =
      elementTypeFromOnnx(n.context(), (int32_t)n.attrInt("stash_type", 1));
  if (!stashType || !isa<FloatType>(stashType))
    return n.error() << "stash_type " << n.attrInt("stash_type", 1)
                     << " is not supported (expected a float type)";
  SmallVector<Value> operands{n.input(0), n.input(1)};
  if (n.hasInput(2))
    operands.push_back(n.input(2));
  OpBuilder &b = n.builder();
  auto op = n.createMulti<nn::LayerNormOp>(
      operands, {b.getNamedAttr("axis", b.getI64IntegerAttr(*axis)),
                 b.getNamedAttr("epsilon", b.getF64FloatAttr(
                                               n.attrFloat("epsilon", 1e-5)))});
  if (failed(op))
    return failure();
  n.setResult(0, (*op)->getResult(0));
  // Mean and InvStdDev are ONNX outputs of stash_type (f32 by default).
  OpChain c(n);
  for (unsigned i = 1; i < 3 && i < n.numOutputs(); ++i)
    if (!n.node().output(i).empty() &&
        failed(c.setResult(i, c.castTo((*op)->getResult(i), stashType))))
      return failure();
  return success();
}

LogicalResult importInstanceNorm(NodeContext &n) {
  if (failed(n.requireInputs(3)) || failed(requireChannels(n)))
    return failure();
  RankedTensorType type = n.inputType(0);
  int64_t rank = type.getRank(), channels = type.getDimSize(1);
  OpChain c(n);
  Value normed = standardize(c, n.input(0), trailingAxes(2, rank),
                             n.attrFloat("epsilon", 1e-5));
  Value scale = perChannel(n, c, 1, "scale", channels, rank);
  Value bias = perChannel(n, c, 2, "B", channels, rank);
  return c.setResult(0,
                     c.op<nn::AddOp>({c.op<nn::MulOp>({normed, scale}), bias}));
}

/// GroupNormalization: statistics per (sample, group of C / num_groups
/// channels). Opset 18 scales and shifts per group ([num_groups]); opset 21
/// per channel ([C]). Statistics are computed in double by the reference
/// kernels, so opset 21's stash_type needs no ops.
Handler groupNormHandler(bool perChannelAffine) {
  return [perChannelAffine](NodeContext &n) -> LogicalResult {
    if (failed(n.requireInputs(3)) || failed(requireChannels(n)))
      return failure();
    RankedTensorType type = n.inputType(0);
    int64_t rank = type.getRank(), batch = type.getDimSize(0),
            channels = type.getDimSize(1);
    int64_t groups = n.attrInt("num_groups", 0);
    if (groups <= 0 || channels % groups != 0)
      return n.error() << "num_groups " << groups
                       << " must be positive and divide the " << channels
                       << " channels";
    OpChain c(n);
    int64_t perGroup = type.getNumElements() / std::max<int64_t>(batch, 1) /
                       std::max<int64_t>(groups, 1);
    Value grouped = c.reshape(n.input(0), {batch, groups, perGroup});
    Value normed = standardize(c, grouped, {2}, n.attrFloat("epsilon", 1e-5));
    Value y;
    if (perChannelAffine) {
      Value scale = perChannel(n, c, 1, "scale", channels, rank);
      Value bias = perChannel(n, c, 2, "bias", channels, rank);
      y = c.op<nn::AddOp>(
          {c.op<nn::MulOp>({c.reshape(normed, type.getShape()), scale}), bias});
    } else {
      // [G] -> [G, 1] broadcasts against the grouped [N, G, C/G * D] view.
      Value scale = perChannel(n, c, 1, "scale", groups, 3);
      Value bias = perChannel(n, c, 2, "bias", groups, 3);
      y = c.reshape(c.op<nn::AddOp>({c.op<nn::MulOp>({normed, scale}), bias}),
                    type.getShape());
    }
    return c.setResult(0, y);
  };
}

/// Inference mode: y = (x - mean) * scale / sqrt(var + epsilon) + B with
/// the running statistics given as inputs.
LogicalResult importBatchNorm(NodeContext &n) {
  if (n.attrInt("training_mode", 0) != 0)
    return n.error() << "training_mode=1 is not supported (peftc runs the base "
                        "model in inference mode)";
  for (unsigned i = 1; i < n.numOutputs(); ++i)
    if (!n.node().output(i).empty())
      return n.error() << "the running statistics outputs of training mode "
                          "are not supported";
  if (failed(n.requireInputs(5)) || failed(requireChannels(n)))
    return failure();
  RankedTensorType type = n.inputType(0);
  int64_t rank = type.getRank(), channels = type.getDimSize(1);
  OpChain c(n);
  Value scale = perChannel(n, c, 1, "scale", channels, rank);
  Value bias = perChannel(n, c, 2, "B", channels, rank);
  Value mean = perChannel(n, c, 3, "input_mean", channels, rank);
  Value var = perChannel(n, c, 4, "input_var", channels, rank);
  Value epsilon = c.scalar(n.input(0), n.attrFloat("epsilon", 1e-5));
  Value factor = c.op<nn::DivOp>(
      {scale, c.op<nn::SqrtOp>({c.op<nn::AddOp>({var, epsilon})})});
  Value centred = c.op<nn::SubOp>({n.input(0), mean});
  return c.setResult(
      0, c.op<nn::AddOp>({c.op<nn::MulOp>({centred, factor}), bias}));
}

/// (x - mean) / (std + 1e-9) over `axes` (default [0, 2, 3]), as ONNX's
/// function body defines it.
LogicalResult importMeanVarianceNorm(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  int64_t rank = n.inputType(0).getRank();
  std::vector<int64_t> raw =
      n.hasAttr("axes") ? n.attrInts("axes") : std::vector<int64_t>{0, 2, 3};
  SmallVector<bool> seen(rank, false);
  for (int64_t axis : raw) {
    auto a = axisAt(n, axis, rank);
    if (failed(a))
      return failure();
    seen[*a] = true;
  }
  SmallVector<int64_t> axes;
  for (int64_t d = 0; d < rank; ++d)
    if (seen[d])
      axes.push_back(d);
  OpChain c(n);
  Value x = n.input(0);
  Value mean = c.reduce<nn::ReduceMeanOp>(x, axes, /*keepdims=*/true);
  Value centred = c.op<nn::SubOp>({x, mean});
  Value var = c.reduce<nn::ReduceMeanOp>(c.op<nn::MulOp>({centred, centred}),
                                         axes, /*keepdims=*/true);
  Value std = c.op<nn::AddOp>({c.op<nn::SqrtOp>({var}), c.scalar(x, 1e-9)});
  return c.setResult(0, c.op<nn::DivOp>({centred, std}));
}

/// x / ||x||_p along one axis, p = 1 or 2.
LogicalResult importLpNorm(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto axis = axisAt(n, n.attrInt("axis", -1), n.inputType(0).getRank());
  if (failed(axis))
    return failure();
  int64_t p = n.attrInt("p", 2);
  if (p != 1 && p != 2)
    return n.error() << "p=" << p << " is not supported (ONNX allows 1 or 2)";
  OpChain c(n);
  Value x = n.input(0);
  Value norm =
      p == 1 ? c.reduce<nn::ReduceSumOp>(c.op<nn::AbsOp>({x}), {*axis}, true)
             : c.op<nn::SqrtOp>({c.reduce<nn::ReduceSumOp>(
                   c.op<nn::MulOp>({x, x}), {*axis}, true)});
  return c.setResult(0, c.op<nn::DivOp>({x, norm}));
}

} // namespace

void registerNormHandlers(HandlerRegistry &r) {
  // Opset 13 is the oldest the importer sees (older models are upgraded).
  r.add("", "Softmax", 13, importSoftmax<nn::SoftmaxOp>);
  r.add("", "LogSoftmax", 13, importSoftmax<nn::LogSoftmaxOp>);
  r.add("", "Hardmax", 13, importHardmax);
  r.add("", "LayerNormalization", 17, importLayerNorm);
  r.add("", "InstanceNormalization", 6, importInstanceNorm);
  r.add("", "GroupNormalization", 18,
        groupNormHandler(/*perChannelAffine=*/false));
  r.add("", "GroupNormalization", 21,
        groupNormHandler(/*perChannelAffine=*/true));
  // Versions 14 and 15 add training_mode and mixed statistic types; the
  // handler rejects the first and the ops' type checks the second.
  r.add("", "BatchNormalization", 9, importBatchNorm);
  r.add("", "MeanVarianceNormalization", 13, importMeanVarianceNorm);
  r.add("", "LpNormalization", 1, importLpNorm);
}

} // namespace peft::onnx_import
