//===- NNLinalgOps.td - matmul, convolution ------------------*- tablegen -*-===//
#ifndef PEFT_NN_LINALG_OPS
#define PEFT_NN_LINALG_OPS

include "dialects/nn/NNBase.td"

def NN_MatMulOp : NN_Op<"matmul", [InferTypeOpAdaptor]> {
  let summary = "numpy matmul: batch dims broadcast, 1-D operands promoted";
  let arguments = (ins NN_AnyTensor:$lhs, NN_AnyTensor:$rhs);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat =
      "$lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)";
}

#endif // PEFT_NN_LINALG_OPS
