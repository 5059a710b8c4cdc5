//===- Passes.h - peftc passes -----------------------------------*- C++
//-*-===//
#pragma once

#include "dialects/nn/NNOps.h"
#include "dialects/kern/KernOps.h"
#include "dialects/peft/PeftOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace peft {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace peft
