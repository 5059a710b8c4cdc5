//===- NNLinalgOps.td - matmul, convolution, pooling, einsum -*- tablegen -*-===//
#ifndef PEFT_NN_LINALG_OPS
#define PEFT_NN_LINALG_OPS

include "dialects/nn/NNBase.td"

def NN_MatMulOp : NN_Op<"matmul", [InferTypeOpAdaptor]> {
  let summary = "numpy matmul: batch dims broadcast, 1-D operands promoted";
  let description = [{
    `transpose_lhs` / `transpose_rhs` swap the last two dims of that operand
    before the product (ONNX Gemm's transA/transB; GEMM libraries take the
    flags directly, so no transpose is materialised). They need an operand of
    rank >= 2 and are printed only when set.
  }];
  let arguments = (ins NN_AnyTensor:$lhs, NN_AnyTensor:$rhs,
                   DefaultValuedAttr<BoolAttr, "false">:$transpose_lhs,
                   DefaultValuedAttr<BoolAttr, "false">:$transpose_rhs);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat =
      "$lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)";
}

def NN_ConvOp : NN_Op<"conv", [InferTypeOpAdaptor]> {
  let summary = "N-D grouped convolution (ONNX Conv) with explicit padding";
  let description = [{
    input [N, C, D1..Dk], weight [M, C/group, K1..Kk], optional bias [M].
    `pads` holds k begin values then k end values (ONNX order); auto_pad is
    resolved to explicit pads at import. Output spatial size:
    floor((D + pad_begin + pad_end - dilation * (K - 1) - 1) / stride) + 1.
  }];
  let arguments = (ins NN_AnyTensor:$input, NN_AnyTensor:$weight,
                   Optional<NN_AnyTensor>:$bias,
                   DenseI64ArrayAttr:$strides, DenseI64ArrayAttr:$pads,
                   DenseI64ArrayAttr:$dilations, I64Attr:$group);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? `strides` $strides `pads` $pads
    `dilations` $dilations `group` $group attr-dict `:` type($input) `,`
    type($weight) (`,` type($bias)^)? `->` type($result)
  }];
}

def NN_ConvTransposeOp : NN_Op<"conv_transpose", [InferTypeOpAdaptor]> {
  let summary = "N-D grouped transposed convolution (ONNX ConvTranspose)";
  let description = [{
    input [N, C, D1..Dk], weight [C, M/group, K1..Kk], optional bias [M].
    `pads` (k begins, k ends) crop the full output; `output_padding` adds
    rows at the end. auto_pad and output_shape are resolved at import.
    Output spatial size: stride * (D - 1) + output_padding +
    dilation * (K - 1) + 1 - pad_begin - pad_end.
  }];
  let arguments = (ins NN_AnyTensor:$input, NN_AnyTensor:$weight,
                   Optional<NN_AnyTensor>:$bias,
                   DenseI64ArrayAttr:$strides, DenseI64ArrayAttr:$pads,
                   DenseI64ArrayAttr:$dilations,
                   DenseI64ArrayAttr:$output_padding, I64Attr:$group);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? `strides` $strides `pads` $pads
    `dilations` $dilations `output_padding` $output_padding `group` $group
    attr-dict `:` type($input) `,` type($weight) (`,` type($bias)^)? `->`
    type($result)
  }];
}

// Pooling windows over the spatial dims of [N, C, D1..Dk]; padded positions
// never contribute a value. With `ceil_mode` the output size rounds up, but a
// window that would start in the end padding is dropped (as PyTorch and
// ONNX opset 19+ do).
class NN_PoolOp<string mnemonic> : NN_Op<mnemonic, [InferTypeOpAdaptor]> {
  let results = (outs NN_AnyTensor:$result);
}

def NN_MaxPoolOp : NN_PoolOp<"max_pool"> {
  let summary = "max pooling (ONNX MaxPool without indices, GlobalMaxPool)";
  let arguments = (ins NN_AnyTensor:$input,
                   DenseI64ArrayAttr:$kernel_shape, DenseI64ArrayAttr:$strides,
                   DenseI64ArrayAttr:$pads, DenseI64ArrayAttr:$dilations,
                   DefaultValuedAttr<BoolAttr, "false">:$ceil_mode);
  let assemblyFormat = [{
    $input `kernel` $kernel_shape `strides` $strides `pads` $pads
    `dilations` $dilations attr-dict `:` type($input) `->` type($result)
  }];
}

def NN_AvgPoolOp : NN_PoolOp<"avg_pool"> {
  let summary = "average pooling (ONNX AveragePool, GlobalAveragePool)";
  let description = [{
    The divisor counts the window positions inside the input, or with
    `count_include_pad` also those inside the padding (never those past it,
    which only ceil_mode creates).
  }];
  let arguments = (ins NN_AnyTensor:$input,
                   DenseI64ArrayAttr:$kernel_shape, DenseI64ArrayAttr:$strides,
                   DenseI64ArrayAttr:$pads, DenseI64ArrayAttr:$dilations,
                   DefaultValuedAttr<BoolAttr, "false">:$ceil_mode,
                   DefaultValuedAttr<BoolAttr, "false">:$count_include_pad);
  let assemblyFormat = [{
    $input `kernel` $kernel_shape `strides` $strides `pads` $pads
    `dilations` $dilations attr-dict `:` type($input) `->` type($result)
  }];
}

def NN_EinsumOp : NN_Op<"einsum", [InferTypeOpAdaptor]> {
  let summary = "Einstein summation (ONNX Einsum)";
  let description = [{
    `equation` is an explicit ("ij,jk->ik") or implicit ("ij,jk") einsum
    equation; `...` stands for broadcast dims. Labels repeated within an
    operand take its diagonal; labels missing from the output are summed.
  }];
  let arguments = (ins Variadic<NN_AnyTensor>:$inputs, StrAttr:$equation);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $equation $inputs attr-dict `:` functional-type($inputs, $result)
  }];
  let extraClassDeclaration = [{
    /// An equation resolved against operand ranks: every operand dim and
    /// every result dim names a label. Letters and the dims `...` expands to
    /// are all labels; `sizes` gives each label's extent (the broadcast
    /// extent for `...` dims).
    struct Equation {
      llvm::SmallVector<llvm::SmallVector<unsigned>> operandLabels;
      llvm::SmallVector<unsigned> resultLabels;
      llvm::SmallVector<int64_t> sizes;
    };
    /// Parses `equation` for operands of `shapes`; emits at `loc` (if any)
    /// and fails on a malformed equation or mismatched sizes.
    static mlir::FailureOr<Equation>
    resolveEquation(std::optional<mlir::Location> loc, llvm::StringRef equation,
                    llvm::ArrayRef<llvm::ArrayRef<int64_t>> shapes);
  }];
}

#endif // PEFT_NN_LINALG_OPS
