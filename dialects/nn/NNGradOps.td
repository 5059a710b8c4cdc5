//===- NNGradOps.td - backward-only ops ----------------------*- tablegen -*-===//
//
// Ops that only gradient rules create: the parts of a backward pass that no
// forward op expresses. The input gradient of a convolution is an
// `nn.conv_transpose` and needs no op here; the weight gradient and the
// pooling gradients do. GEMM/DNN libraries provide each as one primitive
// (oneDNN's backward-weights and pooling-backward), so codegen maps them 1:1.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_NN_GRAD_OPS
#define PEFT_NN_GRAD_OPS

include "dialects/nn/NNBase.td"

def NN_ConvWeightGradOp : NN_Op<"conv_weight_grad"> {
  let summary = "Gradient of nn.conv with respect to its weight";
  let description = [{
    For `nn.conv` of `input` [N, C, D1..Dk] with a weight of the result's
    type [M, C/group, K1..Kk] producing [N, M, O1..Ok], and `grad_output` its
    cotangent [N, M, O1..Ok]:
    result[m, c, t] = sum over n, o of grad_output[n, m, o] *
    input[n, g(m) * C/group + c, o * stride - pad_begin + t * dilation]
    (taps in the padding contribute nothing). The kernel size is the
    result's, since strides and floor rounding make it ambiguous otherwise.
  }];
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$grad_output,
                   DenseI64ArrayAttr:$strides, DenseI64ArrayAttr:$pads,
                   DenseI64ArrayAttr:$dilations, I64Attr:$group);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $grad_output `strides` $strides `pads` $pads `dilations`
    $dilations `group` $group attr-dict `:` type($input) `,`
    type($grad_output) `->` type($result)
  }];
  let hasVerifier = 1;
}

def NN_MaxPoolGradOp : NN_Op<"max_pool_grad",
    [AllTypesMatch<["input", "result"]>]> {
  let summary = "Gradient of nn.max_pool with respect to its input";
  let description = [{
    Each element of `grad_output` (the cotangent of `nn.max_pool(input)` with
    the same attributes) is added to the input element its window picked:
    the first maximum in window order, as PyTorch's max_pool backward does.
  }];
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$grad_output,
                   DenseI64ArrayAttr:$kernel_shape, DenseI64ArrayAttr:$strides,
                   DenseI64ArrayAttr:$pads, DenseI64ArrayAttr:$dilations,
                   DefaultValuedAttr<BoolAttr, "false">:$ceil_mode);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $grad_output `kernel` $kernel_shape `strides` $strides `pads`
    $pads `dilations` $dilations attr-dict `:` type($input) `,`
    type($grad_output) `->` type($result)
  }];
  let hasVerifier = 1;
}

def NN_AvgPoolGradOp : NN_Op<"avg_pool_grad"> {
  let summary = "Gradient of nn.avg_pool with respect to its input";
  let description = [{
    Each element of `grad_output` is divided by its window's divisor (as
    nn.avg_pool counts it) and added to every input element of the window.
    The result has the pooled input's type, which the pooling attributes
    alone do not determine.
  }];
  let arguments = (ins NN_FloatTensor:$grad_output,
                   DenseI64ArrayAttr:$kernel_shape, DenseI64ArrayAttr:$strides,
                   DenseI64ArrayAttr:$pads, DenseI64ArrayAttr:$dilations,
                   DefaultValuedAttr<BoolAttr, "false">:$ceil_mode,
                   DefaultValuedAttr<BoolAttr, "false">:$count_include_pad);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $grad_output `kernel` $kernel_shape `strides` $strides `pads` $pads
    `dilations` $dilations attr-dict `:` type($grad_output) `->` type($result)
  }];
  let hasVerifier = 1;
}

#endif // PEFT_NN_GRAD_OPS
