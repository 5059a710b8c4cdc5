//===- NNReductionOps.td - reductions and arg-reductions ---*- tablegen -*-===//
#ifndef PEFT_NN_REDUCTION_OPS
#define PEFT_NN_REDUCTION_OPS

include "dialects/nn/NNBase.td"

#endif // PEFT_NN_REDUCTION_OPS
