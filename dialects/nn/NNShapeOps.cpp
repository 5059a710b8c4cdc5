//===- NNShapeOps.cpp - verifiers and inference of shape ops --------------===//
#include "dialects/nn/NNOps.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace peft::nn;

namespace {

std::string typeStr(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}

std::string listStr(ArrayRef<int64_t> v) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleaveComma(v, os);
  os << "]";
  return s;
}

/// Checks that an axis attribute is already normalised (the importer does it).
LogicalResult checkAxis(std::optional<Location> loc, StringRef what,
                        int64_t axis, int64_t rank) {
  if (axis < 0 || axis >= std::max<int64_t>(rank, 1))
    return inferenceError(loc, what + " " + Twine(axis) +
                                   " is out of range for rank " + Twine(rank));
  return success();
}

/// The `reduction` of scatter ops.
LogicalResult checkReduction(std::optional<Location> loc, StringRef r) {
  if (r != "none" && r != "add" && r != "mul" && r != "max" && r != "min")
    return inferenceError(loc, "reduction '" + r +
                                   "' is not one of none, add, mul, max, min");
  return success();
}

} // namespace

LogicalResult ReshapeOp::verify() {
  auto in = getInput().getType();
  auto out = getResult().getType();
  if (in.getElementType() != out.getElementType())
    return emitOpError("changes the element type");
  if (in.getNumElements() != out.getNumElements())
    return emitOpError("cannot reshape ")
           << in << " (" << in.getNumElements() << " elements) to " << out
           << " (" << out.getNumElements() << " elements)";
  return success();
}

LogicalResult TransposeOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &inferred) {
  auto in = cast<RankedTensorType>(adaptor.getInput().getType());
  ArrayRef<int64_t> perm = adaptor.getPerm();
  int64_t rank = in.getRank();
  if ((int64_t)perm.size() != rank)
    return inferenceError(
        loc, "perm " + listStr(perm) + " has " + Twine(perm.size()) +
                 " entries for an input of rank " + Twine(rank));
  SmallVector<bool> seen(rank, false);
  SmallVector<int64_t> shape;
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[p])
      return inferenceError(loc, "perm " + listStr(perm) +
                                     " is not a permutation of 0.." +
                                     Twine(rank - 1));
    seen[p] = true;
    shape.push_back(in.getDimSize(p));
  }
  inferred.push_back(RankedTensorType::get(shape, in.getElementType()));
  return success();
}

LogicalResult SliceOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &inferred) {
  auto in = cast<RankedTensorType>(adaptor.getInput().getType());
  ArrayRef<int64_t> starts = adaptor.getStarts(), sizes = adaptor.getSizes(),
                    steps = adaptor.getSteps();
  int64_t rank = in.getRank();
  if ((int64_t)starts.size() != rank || (int64_t)sizes.size() != rank ||
      (int64_t)steps.size() != rank)
    return inferenceError(loc, "starts, sizes and steps need one entry per "
                               "dimension of the rank-" +
                                   Twine(rank) + " input");
  for (int64_t d = 0; d < rank; ++d) {
    int64_t dim = in.getDimSize(d);
    if (steps[d] == 0)
      return inferenceError(loc, "step of dimension " + Twine(d) + " is 0");
    if (sizes[d] < 0)
      return inferenceError(loc,
                            "size of dimension " + Twine(d) + " is negative");
    if (sizes[d] == 0)
      continue;
    int64_t last = starts[d] + (sizes[d] - 1) * steps[d];
    if (starts[d] < 0 || starts[d] >= dim || last < 0 || last >= dim)
      return inferenceError(loc, "dimension " + Twine(d) + " reads indices " +
                                     Twine(starts[d]) + " to " + Twine(last) +
                                     ", outside [0, " + Twine(dim) + ")");
  }
  inferred.push_back(RankedTensorType::get(sizes, in.getElementType()));
  return success();
}

LogicalResult ConcatOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  auto inputs = adaptor.getInputs();
  if (inputs.empty())
    return inferenceError(loc, "concat needs at least one input");
  auto first = cast<RankedTensorType>(inputs[0].getType());
  int64_t axis = adaptor.getAxis();
  if (failed(checkAxis(loc, "concat axis", axis, first.getRank())))
    return failure();
  if (first.getRank() == 0)
    return inferenceError(loc, "cannot concatenate rank-0 tensors");
  SmallVector<int64_t> shape(first.getShape());
  shape[axis] = 0;
  for (Value v : inputs) {
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getElementType() != first.getElementType() ||
        t.getRank() != first.getRank())
      return inferenceError(loc, "concat inputs " + typeStr(first) + " and " +
                                     typeStr(t) +
                                     " differ in element type or rank");
    for (int64_t d = 0; d < t.getRank(); ++d)
      if (d != axis && t.getDimSize(d) != first.getDimSize(d))
        return inferenceError(loc, "concat inputs " + typeStr(first) + " and " +
                                       typeStr(t) + " differ in dimension " +
                                       Twine(d));
    shape[axis] += t.getDimSize(axis);
  }
  inferred.push_back(RankedTensorType::get(shape, first.getElementType()));
  return success();
}

LogicalResult GatherOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  auto data = cast<RankedTensorType>(adaptor.getData().getType());
  auto indices = cast<RankedTensorType>(adaptor.getIndices().getType());
  int64_t axis = adaptor.getAxis();
  if (data.getRank() == 0)
    return inferenceError(loc, "cannot gather from a rank-0 tensor");
  if (failed(checkAxis(loc, "gather axis", axis, data.getRank())))
    return failure();
  SmallVector<int64_t> shape(data.getShape().take_front(axis));
  llvm::append_range(shape, indices.getShape());
  llvm::append_range(shape, data.getShape().drop_front(axis + 1));
  inferred.push_back(RankedTensorType::get(shape, data.getElementType()));
  return success();
}

LogicalResult
GatherElementsOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                   Adaptor adaptor,
                                   SmallVectorImpl<Type> &inferred) {
  auto data = cast<RankedTensorType>(adaptor.getData().getType());
  auto indices = cast<RankedTensorType>(adaptor.getIndices().getType());
  if (data.getRank() == 0 || indices.getRank() != data.getRank())
    return inferenceError(loc, "gather_elements needs indices " +
                                   typeStr(indices) + " of the rank of data " +
                                   typeStr(data) + " (at least 1)");
  if (failed(checkAxis(loc, "gather_elements axis", adaptor.getAxis(),
                       data.getRank())))
    return failure();
  inferred.push_back(
      RankedTensorType::get(indices.getShape(), data.getElementType()));
  return success();
}

LogicalResult GatherNDOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &inferred) {
  auto data = cast<RankedTensorType>(adaptor.getData().getType());
  auto indices = cast<RankedTensorType>(adaptor.getIndices().getType());
  int64_t b = adaptor.getBatchDims();
  int64_t r = data.getRank(), q = indices.getRank();
  if (r < 1 || q < 1)
    return inferenceError(loc, "gather_nd needs data and indices of rank >= 1");
  if (b < 0 || b >= std::min(r, q))
    return inferenceError(
        loc, "batch_dims " + Twine(b) + " must be below the ranks of data (" +
                 Twine(r) + ") and indices (" + Twine(q) + ")");
  for (int64_t i = 0; i < b; ++i)
    if (data.getDimSize(i) != indices.getDimSize(i))
      return inferenceError(loc, "batch dimension " + Twine(i) +
                                     " differs between data " + typeStr(data) +
                                     " and indices " + typeStr(indices));
  int64_t k = indices.getShape().back();
  if (k < 1 || k > r - b)
    return inferenceError(loc, "the last dimension of indices (" + Twine(k) +
                                   ") must be in [1, " + Twine(r - b) + "]");
  SmallVector<int64_t> shape(indices.getShape().drop_back());
  llvm::append_range(shape, data.getShape().drop_front(b + k));
  inferred.push_back(RankedTensorType::get(shape, data.getElementType()));
  return success();
}

LogicalResult BroadcastToOp::verify() {
  auto in = getInput().getType();
  auto out = getResult().getType();
  if (in.getElementType() != out.getElementType())
    return emitOpError("changes the element type");
  if (in.getRank() > out.getRank())
    return emitOpError("cannot broadcast ") << in << " to lower-rank " << out;
  int64_t off = out.getRank() - in.getRank();
  for (int64_t i = 0; i < in.getRank(); ++i) {
    int64_t d = in.getDimSize(i);
    if (d != 1 && d != out.getDimSize(off + i))
      return emitOpError("cannot broadcast ")
             << in << " to " << out << " (dimension " << i << ")";
  }
  return success();
}

LogicalResult PadOp::inferReturnTypes(MLIRContext *,
                                      std::optional<Location> loc,
                                      Adaptor adaptor,
                                      SmallVectorImpl<Type> &inferred) {
  auto in = cast<RankedTensorType>(adaptor.getInput().getType());
  ArrayRef<int64_t> low = adaptor.getLow(), high = adaptor.getHigh();
  StringRef mode = adaptor.getMode();
  if (mode != "constant" && mode != "reflect" && mode != "edge" &&
      mode != "wrap")
    return inferenceError(loc, "pad mode '" + mode +
                                   "' is not one of constant, reflect, edge, "
                                   "wrap");
  if (Value v = adaptor.getValue()) {
    auto vt = cast<RankedTensorType>(v.getType());
    if (vt.getNumElements() != 1 || vt.getElementType() != in.getElementType())
      return inferenceError(loc, "pad value " + typeStr(vt) +
                                     " must be one element of the input's "
                                     "element type");
  }
  int64_t rank = in.getRank();
  if ((int64_t)low.size() != rank || (int64_t)high.size() != rank)
    return inferenceError(loc, "low and high need one entry per dimension of "
                               "the rank-" +
                                   Twine(rank) + " input");
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t dim = in.getDimSize(d), size = dim + low[d] + high[d];
    if (size < 0)
      return inferenceError(loc, "padding dimension " + Twine(d) + " of size " +
                                     Twine(dim) + " by " + Twine(low[d]) +
                                     " and " + Twine(high[d]) +
                                     " leaves a negative size");
    // Non-constant modes read the input to fill the border.
    if (mode != "constant" && dim == 0 && size > 0)
      return inferenceError(loc, "cannot " + mode + "-pad an empty dimension " +
                                     Twine(d));
    shape.push_back(size);
  }
  inferred.push_back(RankedTensorType::get(shape, in.getElementType()));
  return success();
}

LogicalResult TriluOp::verify() {
  if (getInput().getType().getRank() < 2)
    return emitOpError("needs an input of rank >= 2, got ")
           << getInput().getType();
  return success();
}

LogicalResult CumSumOp::verify() {
  int64_t rank = getInput().getType().getRank(), axis = getAxis();
  if (axis < 0 || axis >= std::max<int64_t>(rank, 1))
    return emitOpError("axis ") << axis << " is out of range for rank " << rank;
  return success();
}

LogicalResult
ScatterElementsOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                    Adaptor adaptor,
                                    SmallVectorImpl<Type> &inferred) {
  auto data = cast<RankedTensorType>(adaptor.getData().getType());
  auto indices = cast<RankedTensorType>(adaptor.getIndices().getType());
  auto updates = cast<RankedTensorType>(adaptor.getUpdates().getType());
  if (failed(checkReduction(loc, adaptor.getReduction())))
    return failure();
  if (data.getRank() == 0 || indices.getRank() != data.getRank() ||
      updates.getShape() != indices.getShape() ||
      updates.getElementType() != data.getElementType())
    return inferenceError(loc, "scatter_elements needs indices " +
                                   typeStr(indices) +
                                   " of data's rank and "
                                   "updates " +
                                   typeStr(updates) +
                                   " of the indices' shape and data's element "
                                   "type (data " +
                                   typeStr(data) + ")");
  if (failed(checkAxis(loc, "scatter_elements axis", adaptor.getAxis(),
                       data.getRank())))
    return failure();
  inferred.push_back(data);
  return success();
}

LogicalResult ScatterNDOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &inferred) {
  auto data = cast<RankedTensorType>(adaptor.getData().getType());
  auto indices = cast<RankedTensorType>(adaptor.getIndices().getType());
  auto updates = cast<RankedTensorType>(adaptor.getUpdates().getType());
  if (failed(checkReduction(loc, adaptor.getReduction())))
    return failure();
  int64_t r = data.getRank(), q = indices.getRank();
  if (r < 1 || q < 1)
    return inferenceError(loc,
                          "scatter_nd needs data and indices of rank >= 1");
  int64_t k = indices.getShape().back();
  if (k < 1 || k > r)
    return inferenceError(loc, "the last dimension of indices (" + Twine(k) +
                                   ") must be in [1, " + Twine(r) + "]");
  SmallVector<int64_t> want(indices.getShape().drop_back());
  llvm::append_range(want, data.getShape().drop_front(k));
  if (updates.getShape() != ArrayRef<int64_t>(want) ||
      updates.getElementType() != data.getElementType())
    return inferenceError(loc, "scatter_nd updates " + typeStr(updates) +
                                   " must have shape " + listStr(want) +
                                   " and data's element type");
  inferred.push_back(data);
  return success();
}

LogicalResult OneHotOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  auto indices = cast<RankedTensorType>(adaptor.getIndices().getType());
  auto values = cast<RankedTensorType>(adaptor.getValues().getType());
  if (values.getNumElements() != 2)
    return inferenceError(loc, "one_hot values " + typeStr(values) +
                                   " must hold exactly [off, on]");
  int64_t depth = adaptor.getDepth(), axis = adaptor.getAxis();
  if (depth < 0)
    return inferenceError(loc,
                          "one_hot depth " + Twine(depth) + " is negative");
  if (axis < 0 || axis > indices.getRank())
    return inferenceError(loc, "one_hot axis " + Twine(axis) +
                                   " is out of range for output rank " +
                                   Twine(indices.getRank() + 1));
  SmallVector<int64_t> shape(indices.getShape());
  shape.insert(shape.begin() + axis, depth);
  inferred.push_back(RankedTensorType::get(shape, values.getElementType()));
  return success();
}
