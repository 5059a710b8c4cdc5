//===- PeftOps.h - the peft dialect -----------------------------*- C++ -*-===//
#pragma once

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/peft/PeftDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/peft/PeftAttrs.h.inc"

#define GET_OP_CLASSES
#include "dialects/peft/PeftOps.h.inc"
