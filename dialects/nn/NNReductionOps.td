//===- NNReductionOps.td - reductions and arg-reductions ---*- tablegen -*-===//
//
// A small core of reductions; the other ONNX reductions are short formulas
// of these and elementwise ops, decomposed at import (ReduceL1 = sum(|x|),
// ReduceL2 = sqrt(sum(x * x)), ReduceSumSquare, ReduceLogSum, and
// ReduceLogSumExp = m + log(sum(exp(x - m))) with m the max).
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_NN_REDUCTION_OPS
#define PEFT_NN_REDUCTION_OPS

include "dialects/nn/NNBase.td"

// Reduces `input` over `axes` (sorted, distinct, non-negative; the importer
// resolves ONNX's negative and empty axes). Reduced dims are kept with size
// 1 when `keepdims` is set and dropped otherwise. Empty `axes` reduce
// nothing: the result equals the input.
class NN_ReduceOp<string mnemonic, string sum>
    : NN_Op<mnemonic, [InferTypeOpAdaptor]> {
  let summary = sum;
  let arguments = (ins NN_AnyTensor:$input, DenseI64ArrayAttr:$axes,
                   UnitAttr:$keepdims);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $input `axes` $axes (`keepdims` $keepdims^)? attr-dict `:` type($input)
    `->` type($result)
  }];
}

def NN_ReduceSumOp : NN_ReduceOp<"reduce_sum", "sum over axes (0 when empty)">;
def NN_ReduceMeanOp : NN_ReduceOp<"reduce_mean",
    "arithmetic mean over axes (integers truncate toward zero)">;
def NN_ReduceProdOp : NN_ReduceOp<"reduce_prod", "product over axes (1 when empty)">;
def NN_ReduceMaxOp : NN_ReduceOp<"reduce_max",
    "maximum over axes (NaN wins; the lowest value when empty)">;
def NN_ReduceMinOp : NN_ReduceOp<"reduce_min",
    "minimum over axes (NaN wins; the highest value when empty)">;

// The index (i64) of the extreme element along `axis`; ties go to the first
// index, or the last with `select_last_index`.
class NN_ArgReduceOp<string mnemonic, string sum>
    : NN_Op<mnemonic, [InferTypeOpAdaptor]> {
  let summary = sum;
  let arguments = (ins NN_AnyTensor:$input, I64Attr:$axis, UnitAttr:$keepdims,
                   UnitAttr:$select_last_index);
  let results = (outs StaticShapeTensorOf<[I64]>:$result);
  let assemblyFormat = [{
    $input `axis` $axis (`keepdims` $keepdims^)?
    (`select_last_index` $select_last_index^)? attr-dict `:` type($input)
    `->` type($result)
  }];
}

def NN_ArgMaxOp : NN_ArgReduceOp<"argmax", "index of the maximum along an axis">;
def NN_ArgMinOp : NN_ArgReduceOp<"argmin", "index of the minimum along an axis">;

#endif // PEFT_NN_REDUCTION_OPS
