//===- NNElementwiseOps.cpp - verifiers and inference of this op family ---===//
#include "dialects/nn/NNOps.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace peft::nn;

LogicalResult GeluOp::verify() {
  StringRef a = getApproximate();
  if (a != "none" && a != "tanh")
    return emitOpError("approximate must be \"none\" or \"tanh\", got \"")
           << a << "\"";
  return success();
}

LogicalResult BitShiftOp::verify() {
  StringRef d = getDirection();
  if (d != "left" && d != "right")
    return emitOpError("direction must be \"left\" or \"right\", got \"")
           << d << "\"";
  return success();
}

LogicalResult CastOp::verify() {
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  if (in.getShape() != out.getShape())
    return emitOpError("changes the shape from ")
           << in << " to " << out << "; a cast only converts elements";
  return success();
}

// is_nan and is_inf: an i1 tensor of the input's shape.
static LogicalResult inferPredicate(MLIRContext *context, Type input,
                                    SmallVectorImpl<Type> &inferred) {
  auto t = cast<RankedTensorType>(input);
  inferred.push_back(
      RankedTensorType::get(t.getShape(), IntegerType::get(context, 1)));
  return success();
}

LogicalResult IsNanOp::inferReturnTypes(MLIRContext *context,
                                        std::optional<Location>,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &inferred) {
  return inferPredicate(context, adaptor.getInput().getType(), inferred);
}

LogicalResult IsInfOp::inferReturnTypes(MLIRContext *context,
                                        std::optional<Location>,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &inferred) {
  return inferPredicate(context, adaptor.getInput().getType(), inferred);
}

LogicalResult WhereOp::inferReturnTypes(MLIRContext *context,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &inferred) {
  auto cond = dyn_cast<RankedTensorType>(adaptor.getCondition().getType());
  auto lhs = dyn_cast<RankedTensorType>(adaptor.getLhs().getType());
  auto rhs = dyn_cast<RankedTensorType>(adaptor.getRhs().getType());
  if (!cond || !lhs || !rhs)
    return inferenceError(loc, "expected ranked tensor operands");
  if (!cond.getElementType().isInteger(1))
    return inferenceError(loc, "the condition must be an i1 tensor");
  if (lhs.getElementType() != rhs.getElementType()) {
    std::string msg;
    llvm::raw_string_ostream os(msg);
    os << "the two value operands' element types differ: "
       << lhs.getElementType() << " vs " << rhs.getElementType();
    return inferenceError(loc, msg);
  }
  SmallVector<int64_t> values, shape;
  if (failed(broadcastShapes(loc, lhs.getShape(), rhs.getShape(), values)) ||
      failed(broadcastShapes(loc, cond.getShape(), values, shape)))
    return failure();
  inferred.push_back(RankedTensorType::get(shape, lhs.getElementType()));
  return success();
}
