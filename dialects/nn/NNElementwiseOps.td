//===- NNElementwiseOps.td - constants, unary, binary, compare -*- tablegen -*-===//
#ifndef PEFT_NN_ELEMENTWISE_OPS
#define PEFT_NN_ELEMENTWISE_OPS

include "dialects/nn/NNBase.td"

def NN_ConstantOp : NN_Op<"constant", [ConstantLike,
    AllTypesMatch<["value", "result"]>]> {
  let summary = "A small constant (shapes, scalars, folded shape subgraphs)";
  let description = [{
    Only tiny tensors live in IR attributes; weights are `peft.param`s.
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
}

def NN_NegOp : NN_UnaryOp<"neg"> { let summary = "-x"; }
def NN_ExpOp : NN_UnaryOp<"exp"> { let summary = "e^x"; }

def NN_AddOp : NN_BinaryOp<"add", [Commutative]> { let summary = "x + y"; }
def NN_SubOp : NN_BinaryOp<"sub"> { let summary = "x - y"; }
def NN_MulOp : NN_BinaryOp<"mul", [Commutative]> { let summary = "x * y"; }
def NN_DivOp : NN_BinaryOp<"div"> {
  let summary = "x / y (integer division truncates toward zero)";
}

def NN_EqualOp : NN_CompareOp<"equal", [Commutative]> { let summary = "x == y"; }

#endif // PEFT_NN_ELEMENTWISE_OPS
