//===- NNOps.td - all nn ops ---------------------------------*- tablegen -*-===//
#ifndef PEFT_NN_OPS
#define PEFT_NN_OPS

include "dialects/nn/NNBase.td"
include "dialects/nn/NNElementwiseOps.td"
include "dialects/nn/NNShapeOps.td"
include "dialects/nn/NNReductionOps.td"
include "dialects/nn/NNLinalgOps.td"
include "dialects/nn/NNNormOps.td"
include "dialects/nn/NNGradOps.td"
include "dialects/nn/NNAttentionOps.td"

#endif // PEFT_NN_OPS
