//===- NNAttentionOps.td - scaled dot-product attention -----*- tablegen -*-===//
//
// Attention as one op: the peft-raise-attention pass folds the imported
// QK^T * scale (+ mask) -> softmax -> * V pattern into it, prefix tuning
// concatenates its trainable keys and values inside it, and fused
// (flash-style) kernels implement it. Until those kernels exist,
// peft-decompose expands it back into GEMMs and a softmax.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_NN_ATTENTION_OPS
#define PEFT_NN_ATTENTION_OPS

include "dialects/nn/NNBase.td"

def NN_AttentionOp : NN_Op<"attention",
    [AttrSizedOperandSegments, AllTypesMatch<["query", "result"]>]> {
  let summary = "Scaled dot-product attention with grouped KV heads, an "
                "additive mask and optional key/value prefixes";
  let description = [{
    query [B, H, T, D]; key, value [B, Hkv, S, D] with H % Hkv == 0 (query
    head h reads KV head h / (H / Hkv), grouped-query attention); optional
    prefix_key, prefix_value [Hkv, P, D], shared over the batch; optional
    mask, additive, of the query's element type and broadcastable (numpy
    rules, rank <= 4) to [B, H, T, S]. All operands share one float type.

    With K = concat(prefix_key, key) and V = concat(prefix_value, value)
    along the sequence axis (P + S keys, prefix first):
      logits[b,h,t,j] = scale * sum_d query[b,h,t,d] * K[b,h/G,j,d]
                        + (j < P ? 0 : mask[b,h,t,j-P])
                        + (causal && j >= P && j-P > t + S - T ? -inf : 0)
      result[b,h,t,:] = sum_j softmax_j(logits[b,h,t,:]) * V[b,h/G,j,:]
    with G = H / Hkv. The prefix is always visible: the mask is widened by P
    zero columns. `causal` hides a real key j from query t when j > t + S - T
    (queries are the last T of S positions; with T == S the usual lower
    triangle). A row whose logits are all -inf gives NaN, as softmax does.
  }];
  let arguments = (ins NN_FloatTensor:$query, NN_FloatTensor:$key,
                   NN_FloatTensor:$value, Optional<NN_FloatTensor>:$mask,
                   Optional<NN_FloatTensor>:$prefix_key,
                   Optional<NN_FloatTensor>:$prefix_value,
                   F64Attr:$scale,
                   DefaultValuedAttr<BoolAttr, "false">:$causal);
  let results = (outs NN_FloatTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value (`mask` $mask^)?
    (`prefix` $prefix_key^ `,` $prefix_value)? attr-dict `:` type($query) `,`
    type($key) `,` type($value) (`mask` type($mask)^)?
    (`prefix` type($prefix_key)^ `,` type($prefix_value))?
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Query heads per KV head (H / Hkv).
    int64_t getGroupSize();
    /// Number of prefix positions P (0 without a prefix).
    int64_t getPrefixLength();
    /// The logit scale as a double.
    double getScaleValue() { return getScaleAttr().getValueAsDouble(); }
  }];
}

#endif // PEFT_NN_ATTENTION_OPS
