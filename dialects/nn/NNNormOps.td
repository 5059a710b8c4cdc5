//===- NNNormOps.td - softmax and normalisation ---------------*- tablegen -*-===//
//
// Softmax, log-softmax and layer normalisation are ops of their own: later
// passes fuse them into one kernel and differentiate them as a unit. The
// other ONNX normalisations (BatchNormalization in inference mode,
// InstanceNormalization, GroupNormalization, MeanVarianceNormalization,
// LpNormalization, Hardmax) are decomposed at import into reductions and
// elementwise ops.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_NN_NORM_OPS
#define PEFT_NN_NORM_OPS

include "dialects/nn/NNBase.td"

// y has x's type; `axis` is the (non-negative) axis normalised over.
class NN_SoftmaxLikeOp<string mnemonic, string sum>
    : NN_Op<mnemonic, [SameOperandsAndResultType, InferTypeOpInterface]> {
  let summary = sum;
  let arguments = (ins NN_FloatTensor:$input, I64Attr:$axis);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = "$input `axis` $axis attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def NN_SoftmaxOp : NN_SoftmaxLikeOp<"softmax",
    "exp(x - max) / sum(exp(x - max)) along one axis (ONNX opset 13)">;
def NN_LogSoftmaxOp : NN_SoftmaxLikeOp<"log_softmax",
    "(x - max) - log(sum(exp(x - max))) along one axis (ONNX opset 13)">;

def NN_LayerNormOp : NN_Op<"layer_norm", [InferTypeOpAdaptor]> {
  let summary = "Layer normalisation over the trailing dims from `axis` on";
  let description = [{
    With D = input dims [axis, rank): mean = E_D[x], var = E_D[(x - mean)^2]
    (the biased, population variance), inv_std_dev = 1 / sqrt(var + epsilon),
    result = (x - mean) * inv_std_dev * scale + bias. `scale` and `bias` are
    broadcast to the normalised dims. `mean` and `inv_std_dev` have the
    input's shape with the normalised dims set to 1 and its element type (the
    importer casts them to ONNX's stash_type where needed); backward passes
    reuse them.
  }];
  let arguments = (ins NN_FloatTensor:$input, NN_FloatTensor:$scale,
                   Optional<NN_FloatTensor>:$bias, I64Attr:$axis,
                   F64Attr:$epsilon);
  let results = (outs NN_FloatTensor:$result, NN_FloatTensor:$mean,
                 NN_FloatTensor:$inv_std_dev);
  let assemblyFormat = [{
    $input `,` $scale (`,` $bias^)? `axis` $axis `epsilon` $epsilon attr-dict
    `:` type($input) `,` type($scale) (`,` type($bias)^)? `->` type(results)
  }];
}

#endif // PEFT_NN_NORM_OPS
