//===- Shape.cpp - Reshape, Transpose, Slice, Gather, Concat, ... ---------===//
//
// Data movement and indexing. Shape-like inputs (shapes, axes, starts, pads,
// repeats) must be compile-time constants; the importer folds the shape
// subgraphs that compute them, so these handlers see plain integers and turn
// them into static attributes with negative axes normalised. Flatten,
// Squeeze, Unsqueeze, Tile and DepthToSpace/SpaceToDepth are rewritten into
// reshape/transpose/broadcast_to, Split into slices, and Range and EyeLike
// (whose values follow from static shapes) into constants.
//
//===----------------------------------------------------------------------===//
#include "frontends/onnx/NodeImport.h"

#include "codegen/reference/TensorAttr.h"
#include "dialects/nn/NNOps.h"

#include <cmath>

using namespace mlir;

namespace peft::onnx_import {
namespace {

NamedAttribute i64Attr(NodeContext &n, StringRef name, int64_t v) {
  return n.builder().getNamedAttr(name, n.builder().getI64IntegerAttr(v));
}
NamedAttribute arrayAttr(NodeContext &n, StringRef name, ArrayRef<int64_t> v) {
  return n.builder().getNamedAttr(name, n.builder().getDenseI64ArrayAttr(v));
}
NamedAttribute boolAttr(NodeContext &n, StringRef name, bool v) {
  return n.builder().getNamedAttr(name, n.builder().getBoolAttr(v));
}
NamedAttribute strAttr(NodeContext &n, StringRef name, StringRef v) {
  return n.builder().getNamedAttr(name, n.builder().getStringAttr(v));
}

/// Normalises `axis` for `rank`, reporting an out-of-range axis at the node.
FailureOr<int64_t> axisAt(NodeContext &n, int64_t axis, int64_t rank,
                          StringRef what = "axis") {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    return n.error() << what << " " << axis << " is out of range for rank "
                     << rank;
  return a;
}

/// Normalises a list of distinct axes for `rank`.
FailureOr<SmallVector<int64_t>> axesAt(NodeContext &n, ArrayRef<int64_t> axes,
                                       int64_t rank) {
  SmallVector<int64_t> out;
  SmallVector<bool> seen(rank, false);
  for (int64_t axis : axes) {
    FailureOr<int64_t> a = axisAt(n, axis, rank);
    if (failed(a))
      return failure();
    if (seen[*a])
      return n.error() << "axis " << axis << " appears more than once";
    seen[*a] = true;
    out.push_back(*a);
  }
  return out;
}

FailureOr<Value> reshape(NodeContext &n, Value v, ArrayRef<int64_t> shape) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getShape() == shape)
    return v;
  return n.createTyped<nn::ReshapeOp>(
      {RankedTensorType::get(shape, type.getElementType())}, {v});
}

FailureOr<Value> transpose(NodeContext &n, Value v, ArrayRef<int64_t> perm) {
  if (llvm::equal(perm, llvm::seq<int64_t>(0, perm.size())))
    return v;
  return n.create<nn::TransposeOp>({v}, {arrayAttr(n, "perm", perm)});
}

/// `size` elements from `start` along `axis`, all of the other dimensions.
FailureOr<Value> sliceAxis(NodeContext &n, Value v, int64_t axis, int64_t start,
                           int64_t size) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> starts(type.getRank(), 0), sizes(type.getShape()),
      steps(type.getRank(), 1);
  starts[axis] = size ? start : 0;
  sizes[axis] = size;
  return n.create<nn::SliceOp>({v}, {arrayAttr(n, "starts", starts),
                                     arrayAttr(n, "sizes", sizes),
                                     arrayAttr(n, "steps", steps)});
}

LogicalResult setOrFail(NodeContext &n, FailureOr<Value> v, unsigned i = 0) {
  if (failed(v))
    return failure();
  n.setResult(i, *v);
  return success();
}

/// A scalar integer input that must be known at compile time (k, axis).
FailureOr<int64_t> constantScalar(NodeContext &n, unsigned i, StringRef role) {
  auto v = n.constantInts(i, role);
  if (failed(v))
    return failure();
  if (v->size() != 1)
    return n.error() << "the '" << role
                     << "' input must hold one value, it has " << v->size();
  return (*v)[0];
}

/// Reshape with ONNX's 0 (copy) and -1 (infer) rules, resolved statically.
LogicalResult importReshape(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto in = n.inputType(0);
  auto target = n.constantInts(1, "shape");
  if (failed(target))
    return failure();
  bool allowZero = n.attrInt("allowzero", 0) != 0;
  SmallVector<int64_t> shape;
  int64_t inferAt = -1, known = 1;
  for (auto [i, d] : llvm::enumerate(*target)) {
    if (d == 0 && !allowZero) {
      if ((int64_t)i >= in.getRank())
        return n.error() << "shape entry " << i
                         << " is 0 (copy) but the input has rank "
                         << in.getRank();
      d = in.getDimSize(i);
    }
    if (d == -1) {
      if (inferAt >= 0)
        return n.error() << "shape has more than one -1";
      inferAt = i;
      shape.push_back(1);
      continue;
    }
    if (d < 0)
      return n.error() << "shape entry " << i << " is " << d;
    shape.push_back(d);
    known *= d;
  }
  if (inferAt >= 0) {
    if (known == 0 || in.getNumElements() % known)
      return n.error() << "cannot infer the -1 dimension: "
                       << in.getNumElements() << " elements do not divide by "
                       << known;
    shape[inferAt] = in.getNumElements() / known;
  }
  auto v = n.createTyped<nn::ReshapeOp>(
      {RankedTensorType::get(shape, in.getElementType())}, {n.input(0)});
  return setOrFail(n, v);
}

/// [d0..d(axis-1)] and [d(axis)..] each collapse into one dimension.
LogicalResult importFlatten(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto in = n.inputType(0);
  int64_t rank = in.getRank(), axis = n.attrInt("axis", 1);
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis > rank)
    return n.error() << "axis " << n.attrInt("axis", 1)
                     << " is out of range for rank " << rank;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < rank; ++d)
    (d < axis ? outer : inner) *= in.getDimSize(d);
  return setOrFail(n, reshape(n, n.input(0), {outer, inner}));
}

/// Axes come from the second input (opset 13) or the `axes` attribute.
FailureOr<std::vector<int64_t>> axesInputOrAttr(NodeContext &n) {
  if (n.hasInput(1))
    return n.constantInts(1, "axes");
  return n.attrInts("axes");
}

LogicalResult importSqueeze(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto in = n.inputType(0);
  auto axes = axesInputOrAttr(n);
  if (failed(axes))
    return failure();
  SmallVector<bool> drop(in.getRank(), false);
  if (axes->empty() && !n.hasInput(1) && !n.hasAttr("axes")) {
    for (int64_t d = 0; d < in.getRank(); ++d)
      drop[d] = in.getDimSize(d) == 1;
  } else {
    auto normalized = axesAt(n, *axes, in.getRank());
    if (failed(normalized))
      return failure();
    for (int64_t a : *normalized) {
      if (in.getDimSize(a) != 1)
        return n.error() << "cannot squeeze axis " << a << " of size "
                         << in.getDimSize(a) << " (input " << in << ")";
      drop[a] = true;
    }
  }
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < in.getRank(); ++d)
    if (!drop[d])
      shape.push_back(in.getDimSize(d));
  return setOrFail(n, reshape(n, n.input(0), shape));
}

LogicalResult importUnsqueeze(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto in = n.inputType(0);
  auto axes = axesInputOrAttr(n);
  if (failed(axes))
    return failure();
  int64_t outRank = in.getRank() + axes->size();
  auto normalized = axesAt(n, *axes, outRank);
  if (failed(normalized))
    return failure();
  SmallVector<bool> inserted(outRank, false);
  for (int64_t a : *normalized)
    inserted[a] = true;
  SmallVector<int64_t> shape;
  for (int64_t d = 0, next = 0; d < outRank; ++d)
    shape.push_back(inserted[d] ? 1 : in.getDimSize(next++));
  return setOrFail(n, reshape(n, n.input(0), shape));
}

LogicalResult importTranspose(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  int64_t rank = n.inputType(0).getRank();
  std::vector<int64_t> perm = n.attrInts("perm");
  if (!n.hasAttr("perm"))
    for (int64_t d = rank - 1; d >= 0; --d)
      perm.push_back(d);
  if ((int64_t)perm.size() != rank)
    return n.error() << "perm has " << perm.size()
                     << " entries for an input of rank " << rank;
  auto normalized = axesAt(n, perm, rank);
  if (failed(normalized))
    return failure();
  return setOrFail(n, transpose(n, n.input(0), *normalized));
}

/// ONNX Slice (starts/ends/axes/steps as inputs from opset 10, attributes
/// before), with its clamping rules resolved into in-range starts and sizes.
LogicalResult importSlice(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto in = n.inputType(0);
  int64_t rank = in.getRank();
  std::vector<int64_t> starts, ends, axes, steps;
  if (n.numInputs() > 1) {
    if (failed(n.requireInputs(3)))
      return failure();
    auto s = n.constantInts(1, "starts");
    if (failed(s))
      return failure();
    auto e = n.constantInts(2, "ends");
    if (failed(e))
      return failure();
    starts = *s;
    ends = *e;
    if (n.hasInput(3)) {
      auto a = n.constantInts(3, "axes");
      if (failed(a))
        return failure();
      axes = *a;
    }
    if (n.hasInput(4)) {
      auto st = n.constantInts(4, "steps");
      if (failed(st))
        return failure();
      steps = *st;
    }
  } else {
    starts = n.attrInts("starts");
    ends = n.attrInts("ends");
    axes = n.attrInts("axes");
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i)
      axes.push_back(i);
  if (steps.empty())
    steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() ||
      steps.size() != starts.size())
    return n.error() << "starts, ends, axes and steps differ in length ("
                     << starts.size() << ", " << ends.size() << ", "
                     << axes.size() << ", " << steps.size() << ")";
  auto normalized = axesAt(n, axes, rank);
  if (failed(normalized))
    return failure();
  SmallVector<int64_t> outStarts(rank, 0), sizes(in.getShape()),
      outSteps(rank, 1);
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t axis = (*normalized)[i], dim = in.getDimSize(axis);
    int64_t step = steps[i], start = starts[i], end = ends[i];
    if (step == 0)
      return n.error() << "step of axis " << axes[i] << " is 0";
    if (start < 0)
      start += dim;
    if (end < 0)
      end += dim;
    int64_t size;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      size = end > start ? (end - start + step - 1) / step : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      size = start > end ? (start - end - step - 1) / -step : 0;
    }
    outStarts[axis] = size ? start : 0;
    sizes[axis] = size;
    outSteps[axis] = step;
  }
  return setOrFail(n, n.create<nn::SliceOp>({n.input(0)},
                                            {arrayAttr(n, "starts", outStarts),
                                             arrayAttr(n, "sizes", sizes),
                                             arrayAttr(n, "steps", outSteps)}));
}

LogicalResult importConcat(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  SmallVector<Value> inputs;
  for (unsigned i = 0; i < n.numInputs(); ++i)
    if (n.hasInput(i))
      inputs.push_back(n.input(i));
  auto axis = axisAt(n, n.attrInt("axis", 0), n.inputType(0).getRank());
  if (failed(axis))
    return failure();
  if (inputs.size() == 1)
    return setOrFail(n, inputs[0]);
  return setOrFail(n,
                   n.create<nn::ConcatOp>(inputs, {i64Attr(n, "axis", *axis)}));
}

/// Split sizes: the `split` input (opset 13) or attribute (before), else
/// `num_outputs` (opset 18, last part smaller), else equal parts.
LogicalResult importSplit(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto in = n.inputType(0);
  auto axis = axisAt(n, n.attrInt("axis", 0), in.getRank());
  if (failed(axis))
    return failure();
  int64_t dim = in.getDimSize(*axis), parts = n.numOutputs();
  std::vector<int64_t> sizes;
  if (n.hasInput(1)) {
    auto s = n.constantInts(1, "split");
    if (failed(s))
      return failure();
    sizes = *s;
  } else if (n.hasAttr("split")) {
    sizes = n.attrInts("split");
  } else if (n.hasAttr("num_outputs")) {
    int64_t count = n.attrInt("num_outputs", 0);
    if (count != parts || count < 1)
      return n.error() << "num_outputs " << count << " does not match the "
                       << parts << " outputs";
    int64_t chunk = (dim + count - 1) / count;
    for (int64_t i = 0; i < count; ++i)
      sizes.push_back(std::clamp<int64_t>(dim - i * chunk, 0, chunk));
  } else {
    if (parts < 1 || dim % parts)
      return n.error() << "cannot split dimension " << *axis << " of size "
                       << dim << " into " << parts << " equal parts";
    sizes.assign(parts, dim / parts);
  }
  if ((int64_t)sizes.size() != parts)
    return n.error() << "split has " << sizes.size() << " sizes for " << parts
                     << " outputs";
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0)
      return n.error() << "split size " << s << " is negative";
    total += s;
  }
  if (total != dim)
    return n.error() << "split sizes add up to " << total << ", but dimension "
                     << *axis << " has size " << dim;
  int64_t start = 0;
  for (int64_t i = 0; i < parts; ++i) {
    if (failed(
            setOrFail(n, sliceAxis(n, n.input(0), *axis, start, sizes[i]), i)))
      return failure();
    start += sizes[i];
  }
  return success();
}

LogicalResult importGather(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto axis = axisAt(n, n.attrInt("axis", 0), n.inputType(0).getRank());
  if (failed(axis))
    return failure();
  return setOrFail(n, n.create<nn::GatherOp>({n.input(0), n.input(1)},
                                             {i64Attr(n, "axis", *axis)}));
}

LogicalResult importGatherElements(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto axis = axisAt(n, n.attrInt("axis", 0), n.inputType(0).getRank());
  if (failed(axis))
    return failure();
  return setOrFail(n,
                   n.create<nn::GatherElementsOp>({n.input(0), n.input(1)},
                                                  {i64Attr(n, "axis", *axis)}));
}

LogicalResult importGatherND(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  return setOrFail(n,
                   n.create<nn::GatherNDOp>(
                       {n.input(0), n.input(1)},
                       {i64Attr(n, "batch_dims", n.attrInt("batch_dims", 0))}));
}

/// Expand broadcasts both ways: a target dimension of 1 keeps the input's.
LogicalResult importExpand(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto in = n.inputType(0);
  auto target = n.constantInts(1, "shape");
  if (failed(target))
    return failure();
  for (int64_t d : *target)
    if (d < 0)
      return n.error() << "shape entry " << d << " is negative";
  SmallVector<int64_t> shape;
  if (failed(
          nn::broadcastShapes(std::nullopt, in.getShape(), *target, shape))) {
    InFlightDiagnostic d = n.error() << "cannot expand " << in << " to shape [";
    llvm::interleaveComma(*target, d);
    return d << "]";
  }
  if (in.getShape() == ArrayRef<int64_t>(shape))
    return setOrFail(n, n.input(0));
  return setOrFail(n, n.createTyped<nn::BroadcastToOp>(
                          {RankedTensorType::get(shape, in.getElementType())},
                          {n.input(0)}));
}

/// Tile as broadcast: [d0, d1] -> [1, d0, 1, d1] -> [r0, d0, r1, d1] ->
/// [r0*d0, r1*d1].
LogicalResult importTile(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto in = n.inputType(0);
  auto repeats = n.constantInts(1, "repeats");
  if (failed(repeats))
    return failure();
  if ((int64_t)repeats->size() != in.getRank())
    return n.error() << "repeats has " << repeats->size()
                     << " entries for an input of rank " << in.getRank();
  SmallVector<int64_t> spread, expanded, tiled;
  for (int64_t d = 0; d < in.getRank(); ++d) {
    int64_t r = (*repeats)[d], dim = in.getDimSize(d);
    if (r < 0)
      return n.error() << "repeat " << r << " is negative";
    spread.append({1, dim});
    expanded.append({r, dim});
    tiled.push_back(r * dim);
  }
  if (in.getShape() == ArrayRef<int64_t>(tiled))
    return setOrFail(n, n.input(0));
  auto s = reshape(n, n.input(0), spread);
  if (failed(s))
    return failure();
  auto e = n.createTyped<nn::BroadcastToOp>(
      {RankedTensorType::get(expanded, in.getElementType())}, {*s});
  if (failed(e))
    return failure();
  return setOrFail(n, reshape(n, *e, tiled));
}

/// Pad: `pads` ([begins..., ends...]) from the input (opset 11) or attribute
/// (before); opset 18 adds `axes` naming the padded dimensions.
LogicalResult importPad(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto in = n.inputType(0);
  int64_t rank = in.getRank();
  std::vector<int64_t> pads;
  if (n.hasInput(1)) {
    auto p = n.constantInts(1, "pads");
    if (failed(p))
      return failure();
    pads = *p;
  } else {
    pads = n.attrInts("pads");
  }
  SmallVector<int64_t> axes;
  if (n.hasInput(3)) {
    auto a = n.constantInts(3, "axes");
    if (failed(a))
      return failure();
    auto normalized = axesAt(n, *a, rank);
    if (failed(normalized))
      return failure();
    axes = *normalized;
  } else {
    for (int64_t d = 0; d < rank; ++d)
      axes.push_back(d);
  }
  if (pads.size() != 2 * axes.size())
    return n.error() << "pads has " << pads.size() << " entries, expected "
                     << 2 * axes.size();
  SmallVector<int64_t> low(rank, 0), high(rank, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    low[axes[i]] = pads[i];
    high[axes[i]] = pads[i + axes.size()];
  }
  std::string mode = n.attrString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" &&
      mode != "wrap")
    return n.error() << "pad mode '" << mode << "' is not supported";
  SmallVector<Value> operands{n.input(0)};
  if (mode == "constant") {
    if (n.hasInput(2))
      operands.push_back(n.input(2));
    else if (n.hasAttr("value"))
      operands.push_back(n.scalarLike(n.input(0), n.attrFloat("value", 0)));
  }
  return setOrFail(n,
                   n.create<nn::PadOp>(operands, {strAttr(n, "mode", mode),
                                                  arrayAttr(n, "low", low),
                                                  arrayAttr(n, "high", high)}));
}

/// Range has a value-dependent length, so its inputs must be constants and
/// it becomes one.
LogicalResult importRange(NodeContext &n) {
  if (failed(n.requireInputs(3)))
    return failure();
  std::optional<Tensor> bounds[3] = {n.constantInput(0), n.constantInput(1),
                                     n.constantInput(2)};
  for (auto &b : bounds)
    if (!b)
      return n.error() << "a Range whose start, limit and delta are not known "
                          "at compile time is not supported: its length sets "
                          "a static shape (give static input shapes with "
                          "--input-shape so shape computations fold)";
  for (auto &b : bounds)
    if (b->numel() != 1)
      return n.error() << "start, limit and delta must be scalars";
  // Far beyond any sequence length; guards against allocating garbage sizes.
  constexpr int64_t maxCount = int64_t(1) << 31;
  DType dtype = bounds[0]->dtype();
  if (isFloat(dtype)) {
    double start = bounds[0]->getDouble(0), limit = bounds[1]->getDouble(0),
           delta = bounds[2]->getDouble(0);
    double steps = std::ceil((limit - start) / delta);
    if (delta == 0 || !std::isfinite(steps) || steps > maxCount)
      return n.error() << "Range(" << start << ", " << limit << ", " << delta
                       << ") has no finite length below " << maxCount;
    int64_t count = std::max<int64_t>(0, (int64_t)steps);
    Tensor t(dtype, {count});
    for (int64_t i = 0; i < count; ++i)
      t.setDouble(i, start + i * delta);
    n.setResult(0, n.constant(t));
    return success();
  }
  int64_t start = bounds[0]->getInt(0), limit = bounds[1]->getInt(0),
          delta = bounds[2]->getInt(0);
  if (delta == 0)
    return n.error() << "Range needs a non-zero delta";
  // In 128 bits: limit - start may overflow int64.
  __int128 span = (__int128)limit - start, steps = 0;
  if (delta > 0 && span > 0)
    steps = (span + delta - 1) / delta;
  else if (delta < 0 && span < 0)
    steps = (-span - delta - 1) / -(__int128)delta;
  if (steps > maxCount)
    return n.error() << "Range(" << start << ", " << limit << ", " << delta
                     << ") has more than " << maxCount << " elements";
  int64_t count = (int64_t)steps;
  Tensor t(dtype, {count});
  for (int64_t i = 0; i < count; ++i)
    t.setInt(i, start + i * delta);
  n.setResult(0, n.constant(t));
  return success();
}

LogicalResult importTrilu(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  int64_t k = 0;
  if (n.hasInput(1)) {
    auto v = constantScalar(n, 1, "k");
    if (failed(v))
      return failure();
    k = *v;
  }
  return setOrFail(
      n, n.create<nn::TriluOp>({n.input(0)},
                               {boolAttr(n, "upper", n.attrInt("upper", 1)),
                                i64Attr(n, "k", k)}));
}

LogicalResult importCumSum(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto axisValue = constantScalar(n, 1, "axis");
  if (failed(axisValue))
    return failure();
  auto axis =
      axisAt(n, *axisValue, std::max<int64_t>(n.inputType(0).getRank(), 1));
  if (failed(axis))
    return failure();
  return setOrFail(
      n, n.create<nn::CumSumOp>(
             {n.input(0)}, {i64Attr(n, "axis", *axis),
                            boolAttr(n, "exclusive", n.attrInt("exclusive", 0)),
                            boolAttr(n, "reverse", n.attrInt("reverse", 0))}));
}

/// ScatterElements, and the deprecated Scatter (opset 9-10) it replaced.
LogicalResult importScatterElements(NodeContext &n) {
  if (failed(n.requireInputs(3)))
    return failure();
  auto axis = axisAt(n, n.attrInt("axis", 0), n.inputType(0).getRank());
  if (failed(axis))
    return failure();
  return setOrFail(
      n, n.create<nn::ScatterElementsOp>(
             {n.input(0), n.input(1), n.input(2)},
             {i64Attr(n, "axis", *axis),
              strAttr(n, "reduction", n.attrString("reduction", "none"))}));
}

LogicalResult importScatterND(NodeContext &n) {
  if (failed(n.requireInputs(3)))
    return failure();
  return setOrFail(
      n, n.create<nn::ScatterNDOp>(
             {n.input(0), n.input(1), n.input(2)},
             {strAttr(n, "reduction", n.attrString("reduction", "none"))}));
}

LogicalResult importOneHot(NodeContext &n) {
  if (failed(n.requireInputs(3)))
    return failure();
  std::optional<Tensor> depth = n.constantInput(1);
  if (!depth)
    return n.error() << "a OneHot depth that is not known at compile time is "
                        "not supported: it sets the output shape";
  if (depth->numel() != 1)
    return n.error() << "depth must hold one value";
  int64_t rank = n.inputType(0).getRank() + 1;
  auto axis = axisAt(n, n.attrInt("axis", -1), rank);
  if (failed(axis))
    return failure();
  return setOrFail(n, n.create<nn::OneHotOp>(
                          {n.input(0), n.input(2)},
                          {i64Attr(n, "depth", (int64_t)depth->getDouble(0)),
                           i64Attr(n, "axis", *axis)}));
}

/// EyeLike depends only on the (static) input shape: a constant.
LogicalResult importEyeLike(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto in = n.inputType(0);
  if (in.getRank() != 2)
    return n.error() << "expects a 2-D input, got " << in;
  std::optional<DType> dtype = toDType(in.getElementType());
  if (n.hasAttr("dtype"))
    dtype = dtypeFromOnnx(n.attrInt("dtype", 0));
  if (!dtype)
    return n.error() << "EyeLike to ONNX data type " << n.attrInt("dtype", 0)
                     << " is not supported";
  int64_t k = n.attrInt("k", 0);
  Tensor t(*dtype, {in.getDimSize(0), in.getDimSize(1)});
  for (int64_t i = 0; i < in.getDimSize(0); ++i)
    if (i + k >= 0 && i + k < in.getDimSize(1))
      t.setInt(i * in.getDimSize(1) + i + k, 1);
  n.setResult(0, n.constant(t));
  return success();
}

/// DepthToSpace as reshape -> transpose -> reshape, in DCR or CRD order.
LogicalResult importDepthToSpace(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto in = n.inputType(0);
  int64_t b = n.attrInt("blocksize", 0);
  if (in.getRank() != 4 || b < 1 || b > in.getDimSize(1) ||
      in.getDimSize(1) % (b * b))
    return n.error() << "needs an NCHW input whose channels divide by "
                        "blocksize^2 (input "
                     << in << ", blocksize " << b << ")";
  int64_t N = in.getDimSize(0), C = in.getDimSize(1) / (b * b),
          H = in.getDimSize(2), W = in.getDimSize(3);
  std::string mode = n.attrString("mode", "DCR");
  SmallVector<int64_t> split, perm;
  if (mode == "DCR") {
    split = {N, b, b, C, H, W};
    perm = {0, 3, 4, 1, 5, 2};
  } else if (mode == "CRD") {
    split = {N, C, b, b, H, W};
    perm = {0, 1, 4, 2, 5, 3};
  } else {
    return n.error() << "mode '" << mode << "' is not supported (DCR or CRD)";
  }
  auto s = reshape(n, n.input(0), split);
  if (failed(s))
    return failure();
  auto t = transpose(n, *s, perm);
  if (failed(t))
    return failure();
  return setOrFail(n, reshape(n, *t, {N, C, H * b, W * b}));
}

LogicalResult importSpaceToDepth(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto in = n.inputType(0);
  int64_t b = n.attrInt("blocksize", 0);
  if (in.getRank() != 4 || b < 1 || in.getDimSize(2) % b ||
      in.getDimSize(3) % b)
    return n.error() << "needs an NCHW input whose height and width divide "
                        "by blocksize (input "
                     << in << ", blocksize " << b << ")";
  int64_t N = in.getDimSize(0), C = in.getDimSize(1), H = in.getDimSize(2) / b,
          W = in.getDimSize(3) / b;
  auto s = reshape(n, n.input(0), {N, C, H, b, W, b});
  if (failed(s))
    return failure();
  auto t = transpose(n, *s, {0, 3, 5, 1, 2, 4});
  if (failed(t))
    return failure();
  return setOrFail(n, reshape(n, *t, {N, C * b * b, H, W}));
}

} // namespace

void registerShapeHandlers(HandlerRegistry &r) {
  r.add("", "Reshape", 5, importReshape);
  r.add("", "Flatten", 1, importFlatten);
  r.add("", "Squeeze", 1, importSqueeze);
  r.add("", "Unsqueeze", 1, importUnsqueeze);
  r.add("", "Transpose", 1, importTranspose);
  r.add("", "Slice", 1, importSlice);
  r.add("", "Concat", 1, importConcat);
  r.add("", "Split", 1, importSplit);
  r.add("", "Gather", 1, importGather);
  r.add("", "GatherElements", 11, importGatherElements);
  r.add("", "GatherND", 11, importGatherND);
  r.add("", "Expand", 8, importExpand);
  r.add("", "Tile", 6, importTile);
  r.add("", "Pad", 2, importPad);
  r.add("", "Range", 11, importRange);
  r.add("", "Trilu", 14, importTrilu);
  r.add("", "CumSum", 11, importCumSum);
  r.add("", "Scatter", 9, importScatterElements);
  r.add("", "ScatterElements", 11, importScatterElements);
  r.add("", "ScatterND", 11, importScatterND);
  r.add("", "OneHot", 9, importOneHot);
  r.add("", "EyeLike", 9, importEyeLike);
  r.add("", "DepthToSpace", 1, importDepthToSpace);
  r.add("", "SpaceToDepth", 1, importSpaceToDepth);
}

} // namespace peft::onnx_import
