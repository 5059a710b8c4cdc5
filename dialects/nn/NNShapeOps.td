//===- NNShapeOps.td - reshape, transpose, slice, gather, ... -*- tablegen -*-===//
//
// Data movement and indexing. Everything a shape computation needs (sizes,
// axes, starts, pads) is a static attribute: the importer folds ONNX's shape
// subgraphs and normalises negative axes and out-of-range slice bounds, so
// these ops only ever see checked, non-negative values.
//
//===----------------------------------------------------------------------===//
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

def NN_TransposeOp : NN_Op<"transpose", [InferTypeOpAdaptor]> {
  let summary = "Permutes dimensions: result dim i is input dim perm[i]";
  let arguments = (ins NN_AnyTensor:$input, DenseI64ArrayAttr:$perm);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat =
      "$input `perm` $perm attr-dict `:` type($input) `->` type($result)";
}

def NN_SliceOp : NN_Op<"slice", [InferTypeOpAdaptor]> {
  let summary = "Strided slice: result[i] = input[starts + i * steps]";
  let description = [{
    One entry per dimension. Along dimension d the result has `sizes[d]`
    elements, element i read from input index `starts[d] + i * steps[d]`;
    steps may be negative (reversed slices) but never zero, and every index
    read lies inside the input. ONNX's clamping of starts/ends is resolved at
    import.
  }];
  let arguments = (ins NN_AnyTensor:$input, DenseI64ArrayAttr:$starts,
                   DenseI64ArrayAttr:$sizes, DenseI64ArrayAttr:$steps);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $input `starts` $starts `sizes` $sizes `steps` $steps attr-dict `:`
    type($input) `->` type($result)
  }];
}

def NN_ConcatOp : NN_Op<"concat", [InferTypeOpAdaptor]> {
  let summary = "Joins tensors along `axis`; other dimensions must agree";
  let arguments = (ins Variadic<NN_AnyTensor>:$inputs, I64Attr:$axis);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat =
      "$inputs `axis` $axis attr-dict `:` type($inputs) `->` type($result)";
}

def NN_GatherOp : NN_Op<"gather", [InferTypeOpAdaptor]> {
  let summary = "ONNX Gather: picks slices of `data` along `axis` (negative indices count from the end)";
  let description = [{
    result shape = data[:axis] ++ indices ++ data[axis+1:]. Embedding lookups
    are `nn.gather` on axis 0 of the table.
  }];
  let arguments = (ins NN_AnyTensor:$data, NN_IntTensor:$indices, I64Attr:$axis);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $data `[` $indices `]` `axis` $axis attr-dict `:`
    type($data) `,` type($indices) `->` type($result)
  }];
}

def NN_GatherElementsOp : NN_Op<"gather_elements", [InferTypeOpAdaptor]> {
  let summary = "ONNX GatherElements: result[p] = data[p with p[axis] = indices[p]]";
  let arguments = (ins NN_AnyTensor:$data, NN_IntTensor:$indices, I64Attr:$axis);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $data `[` $indices `]` `axis` $axis attr-dict `:`
    type($data) `,` type($indices) `->` type($result)
  }];
}

def NN_GatherNDOp : NN_Op<"gather_nd", [InferTypeOpAdaptor]> {
  let summary = "ONNX GatherND: the last axis of `indices` indexes the leading dims of `data`";
  let arguments = (ins NN_AnyTensor:$data, NN_IntTensor:$indices,
                   I64Attr:$batch_dims);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $data `[` $indices `]` `batch_dims` $batch_dims attr-dict `:`
    type($data) `,` type($indices) `->` type($result)
  }];
}

def NN_BroadcastToOp : NN_Op<"broadcast_to"> {
  let summary = "numpy broadcast of the input to the result's shape (ONNX Expand)";
  let arguments = (ins NN_AnyTensor:$input);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def NN_PadOp : NN_Op<"pad", [InferTypeOpAdaptor]> {
  let summary = "Pads (or, with negative amounts, crops) each dimension";
  let description = [{
    `low[d]` / `high[d]` elements are added before / after dimension d.
    `mode` is one of "constant" (fill with `value`, zero when absent),
    "reflect" (mirror without repeating the edge), "edge" (repeat the edge)
    or "wrap" (periodic).
  }];
  let arguments = (ins NN_AnyTensor:$input, Optional<NN_AnyTensor>:$value,
                   StrAttr:$mode, DenseI64ArrayAttr:$low,
                   DenseI64ArrayAttr:$high);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $input (`value` $value^)? `mode` $mode `low` $low `high` $high attr-dict
    `:` type($input) (`,` type($value)^)? `->` type($result)
  }];
}

def NN_TriluOp : NN_Op<"trilu", [SameOperandsAndResultType, InferTypeOpInterface]> {
  let summary = "Keeps the upper (or lower) triangle of the last two dims from diagonal k";
  let description = [{
    upper: keeps element (i, j) when j - i >= k; lower: when j - i <= k;
    other elements become zero.
  }];
  let arguments = (ins NN_AnyTensor:$input, BoolAttr:$upper, I64Attr:$k);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$input `upper` $upper `k` $k attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def NN_CumSumOp : NN_Op<"cumsum", [SameOperandsAndResultType, InferTypeOpInterface]> {
  let summary = "Running sum along `axis` (optionally exclusive and/or reversed)";
  let arguments = (ins NN_AnyTensor:$input, I64Attr:$axis, BoolAttr:$exclusive,
                   BoolAttr:$reverse);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $input `axis` $axis `exclusive` $exclusive `reverse` $reverse attr-dict
    `:` type($result)
  }];
  let hasVerifier = 1;
}

def NN_ScatterElementsOp : NN_Op<"scatter_elements", [InferTypeOpAdaptor]> {
  let summary = "ONNX ScatterElements: data[p with p[axis] = indices[p]] (op)= updates[p]";
  let description = [{
    `reduction` is "none" (later writes win), "add", "mul", "max" or "min".
  }];
  let arguments = (ins NN_AnyTensor:$data, NN_IntTensor:$indices,
                   NN_AnyTensor:$updates, I64Attr:$axis, StrAttr:$reduction);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $data `[` $indices `]` `,` $updates `axis` $axis `reduction` $reduction
    attr-dict `:` type($data) `,` type($indices) `,` type($updates) `->`
    type($result)
  }];
}

def NN_ScatterNDOp : NN_Op<"scatter_nd", [InferTypeOpAdaptor]> {
  let summary = "ONNX ScatterND: slices of data at the index tuples (op)= updates";
  let arguments = (ins NN_AnyTensor:$data, NN_IntTensor:$indices,
                   NN_AnyTensor:$updates, StrAttr:$reduction);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $data `[` $indices `]` `,` $updates `reduction` $reduction attr-dict `:`
    type($data) `,` type($indices) `,` type($updates) `->` type($result)
  }];
}

def NN_OneHotOp : NN_Op<"one_hot", [InferTypeOpAdaptor]> {
  let summary = "ONNX OneHot: values[1] where the new `axis` equals the index, else values[0]";
  let description = [{
    `values` holds [off, on]; indices in [-depth, depth) (negative ones count
    from the end); out-of-range indices give an all-off row.
  }];
  let arguments = (ins NN_AnyTensor:$indices, NN_AnyTensor:$values,
                   I64Attr:$depth, I64Attr:$axis);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = [{
    $indices `,` $values `depth` $depth `axis` $axis attr-dict `:`
    type($indices) `,` type($values) `->` type($result)
  }];
}

#endif // PEFT_NN_SHAPE_OPS
