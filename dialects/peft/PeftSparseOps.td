//===- PeftSparseOps.td - sparse fine-tuning ops ----------*- tablegen -*-===//
//
// Sparse fine-tuning (DESIGN.md "Method semantics"): a trainable delta on a
// fixed set of k entries of a frozen weight, chosen at compile time by
// peft-insert-sparse. Only the k values train, so the gradient, the
// optimizer state and the saved adapter hold k numbers per weight. Included
// from PeftOps.td.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_PEFT_SPARSE_OPS
#define PEFT_PEFT_SPARSE_OPS

def Peft_SparseIndexTensor : 1DTensorOf<[I64]>;

def Peft_SparseDeltaOp : Peft_Op<"sparse_delta",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "A frozen weight plus a delta on k of its entries";
  let description = [{
    `result = weight`, except at the k entries `indices` names, where
    `result = weight + values[j]` (`indices: [k]` i64, `values: [k]` of the
    weight's element type).

    `indices` are flat row-major positions in PyTorch's layout of the
    weight: in `weight` itself, or, with `transposed` (an ONNX export that
    stores a Linear weight as `[in, out]`), in its transpose — position `p`
    of the `[b, a]` transpose of an `[a, b]` weight is `weight[p mod a,
    p div a]`. They must be strictly increasing and in range: the
    reference evaluator reports a violation; generated kernels (which look
    each element up by binary search) apply nothing where they do not find
    it. Gradients: `values` gets `peft.sparse_gather` of the result's
    cotangent; `weight` gets the cotangent unchanged (in practice it is
    frozen and gets none).

    ```mlir
    %w = peft.sparse_delta %weight, %indices, %delta {transposed}
        : tensor<32x64xf32>, tensor<103xi64>, tensor<103xf32>
    ```
  }];
  let arguments = (ins Peft_FloatTensor:$weight,
                       Peft_SparseIndexTensor:$indices,
                       Peft_FloatTensor:$values,
                       UnitAttr:$transposed);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $weight `,` $indices `,` $values attr-dict `:` type($weight) `,`
    type($indices) `,` type($values)
  }];
}

def Peft_SparseGatherOp : Peft_Op<"sparse_gather",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "The k entries of a tensor that peft.sparse_delta changes";
  let description = [{
    `result[j] = input[indices[j]]` with `indices` and `transposed` as in
    `peft.sparse_delta` (positions in `input`, or in its transpose); the
    gradient of `peft.sparse_delta`'s `values`. An index out of range is an
    error in the reference evaluator and reads 0 in generated kernels.
    Backward-only: gradient rules create it, nothing differentiates it.

    ```mlir
    %g = peft.sparse_gather %dw, %indices {transposed}
        : tensor<32x64xf32>, tensor<103xi64> -> tensor<103xf32>
    ```
  }];
  let arguments = (ins Peft_FloatTensor:$input,
                       Peft_SparseIndexTensor:$indices,
                       UnitAttr:$transposed);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $indices attr-dict `:` type($input) `,` type($indices) `->`
    type($result)
  }];
}

#endif // PEFT_PEFT_SPARSE_OPS
