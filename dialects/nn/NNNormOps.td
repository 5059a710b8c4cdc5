//===- NNNormOps.td - softmax, normalisation, activations with state -*- tablegen -*-===//
#ifndef PEFT_NN_NORM_OPS
#define PEFT_NN_NORM_OPS

include "dialects/nn/NNBase.td"

#endif // PEFT_NN_NORM_OPS
