//===- PeftDialect.cpp - peft dialect, params and uses --------------------===//
#include "dialects/peft/PeftOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace peft::pir;

#include "dialects/peft/PeftDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/peft/PeftAttrs.cpp.inc"

void PeftDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/peft/PeftAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/peft/PeftOps.cpp.inc"
      >();
}

LogicalResult ParamOp::verify() {
  RankedTensorType type = getTensorType();
  if (StorageAttr storage = getStorageAttr()) {
    int64_t bits = type.getElementTypeBitWidth();
    int64_t expect = type.getNumElements() * std::max<int64_t>(bits, 8) / 8;
    if (storage.getLength() != expect)
      return emitOpError("storage holds ")
             << storage.getLength() << " bytes but " << type << " needs "
             << expect;
    if (storage.getOffset() < 0)
      return emitOpError("storage offset is negative");
  }
  if (auto value = getValueAttr())
    if (value.getType() != type)
      return emitOpError("value type ") << value.getType()
                                        << " differs from the param type " << type;
  if (getStorageAttr() && getValueAttr())
    return emitOpError("has both storage and an inline value");
  return success();
}

LogicalResult UseOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto param =
      symbolTable.lookupNearestSymbolFrom<ParamOp>(*this, getParamAttr());
  if (!param)
    return emitOpError("'") << getParam() << "' is not a peft.param";
  if (param.getType() != getType())
    return emitOpError("type ") << getType() << " differs from param @"
                                << getParam() << " of type " << param.getType();
  return success();
}

#define GET_OP_CLASSES
#include "dialects/peft/PeftOps.cpp.inc"
