//===- NNDialect.h - the nn dialect -----------------------------*- C++ -*-===//
#pragma once

#include "mlir/IR/Dialect.h"

#include "dialects/nn/NNDialect.h.inc"
