//===- NNOps.cpp - generated op definitions and shared inference ----------===//
//
// Op-specific verifiers and inference live beside their family
// (NNShapeOps.cpp, NNLinalgOps.cpp, ...); this file holds the generated
// definitions and the helpers every family shares.
//
//===----------------------------------------------------------------------===//
#include "dialects/nn/NNOps.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace peft::nn {

LogicalResult inferenceError(std::optional<Location> loc, const Twine &msg) {
  if (loc)
    emitError(*loc) << msg;
  return failure();
}

static std::string shapeStr(ArrayRef<int64_t> s) {
  std::string out;
  llvm::raw_string_ostream os(out);
  os << "[";
  llvm::interleave(s, os, "x");
  os << "]";
  return out;
}

LogicalResult broadcastShapes(std::optional<Location> loc, ArrayRef<int64_t> a,
                              ArrayRef<int64_t> b,
                              SmallVectorImpl<int64_t> &out) {
  size_t rank = std::max(a.size(), b.size());
  out.assign(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      return inferenceError(loc,
                            "shapes " + shapeStr(a) + " and " + shapeStr(b) +
                                " do not broadcast (dimension " + Twine(i) +
                                ": " + Twine(da) + " vs " + Twine(db) + ")");
    out[i] = da == 1 ? db : da;
  }
  return success();
}

LogicalResult inferBroadcastResult(std::optional<Location> loc, Type lhs,
                                   Type rhs, Type resultElementType,
                                   SmallVectorImpl<Type> &out) {
  auto l = dyn_cast<RankedTensorType>(lhs);
  auto r = dyn_cast<RankedTensorType>(rhs);
  if (!l || !r)
    return inferenceError(loc, "expected ranked tensor operands");
  if (l.getElementType() != r.getElementType()) {
    std::string msg;
    llvm::raw_string_ostream os(msg);
    os << "operand element types differ: " << l.getElementType() << " vs "
       << r.getElementType();
    return inferenceError(loc, msg);
  }
  SmallVector<int64_t> shape;
  if (failed(broadcastShapes(loc, l.getShape(), r.getShape(), shape)))
    return failure();
  out.push_back(RankedTensorType::get(
      shape, resultElementType ? resultElementType : l.getElementType()));
  return success();
}

FailureOr<int64_t> normalizeAxis(std::optional<Location> loc, int64_t axis,
                                 int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= std::max<int64_t>(rank, 1))
    return inferenceError(loc, "axis " + Twine(axis) +
                                   " is out of range for rank " + Twine(rank));
  return a;
}

} // namespace peft::nn

using namespace peft::nn;

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

#define GET_OP_CLASSES
#include "dialects/nn/NNOps.cpp.inc"
