//===- NNShapeOps.td - reshape, transpose, slice, gather, ... -*- tablegen -*-===//
#ifndef PEFT_NN_SHAPE_OPS
#define PEFT_NN_SHAPE_OPS

include "dialects/nn/NNBase.td"

def NN_ReshapeOp : NN_Op<"reshape"> {
  let summary = "Same elements, new static shape (ONNX Reshape/Flatten/Squeeze/Unsqueeze)";
  let arguments = (ins NN_AnyTensor:$input);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

#endif // PEFT_NN_SHAPE_OPS
