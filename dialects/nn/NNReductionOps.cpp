//===- NNReductionOps.cpp - verifiers and inference of this op family ---------------===//
#include "dialects/nn/NNOps.h"

using namespace mlir;
using namespace peft::nn;
