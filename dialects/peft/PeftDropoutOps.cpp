//===- PeftDropoutOps.cpp - verifier of peft.dropout ----------------------===//
//
// The result has the input's type.
//
//===----------------------------------------------------------------------===//
#include "dialects/peft/PeftOps.h"

using namespace mlir;
using namespace peft::pir;

LogicalResult DropoutOp::verify() {
  double p = getProbability();
  // PyTorch's Dropout refuses p outside [0, 1] too.
  if (!(p >= 0 && p <= 1))
    return emitOpError("p must be in [0, 1], got ") << p;
  return success();
}

LogicalResult DropoutOp::inferReturnTypes(MLIRContext *context,
                                          std::optional<Location> location,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &inferred) {
  inferred.push_back(adaptor.getInput().getType());
  return success();
}
