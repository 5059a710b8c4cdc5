//===- PeftDropoutOps.td - adapter dropout ----------------*- tablegen -*-===//
//
// PEFT's `lora_dropout` with a counter-based mask (runtime/include/peft/
// Dropout.h). Included from PeftOps.td.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_PEFT_DROPOUT_OPS
#define PEFT_PEFT_DROPOUT_OPS

def Peft_DropoutOp : Peft_Op<"dropout", [Pure, InferTypeOpAdaptor]> {
  let summary = "Dropout with a mask that is a pure function of its position";
  let description = [{
    `torch.nn.Dropout(p)` in training mode, as PEFT's `lora_dropout` applies
    it to the adapter's input: each element is zeroed with probability `p`
    and the others are multiplied by `1 / (1 − p)`. `step` (an i64 scalar,
    the function argument marked `peft.step`) selects the mask:

    - `step ≥ 1`: element `i` (row-major index into `input`) is kept iff
      `philox4x32_10(counter = (i mod 2³², i div 2³², step, stream),
      key = (seed mod 2³², seed div 2³²))[0] ≥ floor(p · 2³²)`
      (runtime/include/peft/Dropout.h). The mask depends on nothing else,
      so a resumed run reproduces it and backward recomputes it (the
      gradient is this op applied to the cotangent, same `step`, `seed`,
      `stream`);
    - `step ≤ 0`: evaluation (PyTorch's `module.eval()`): the identity.

    `seed` is the spec's `training.seed`; `stream` tells the dropouts of one
    model apart (peft-insert-adapters numbers them 0, 1, … in module
    order). PyTorch's own RNG stream is not reproduced.

    ```mlir
    %xd = peft.dropout %x, %step {p = 1.0e-01 : f64, seed = 42 : i64,
        stream = 3 : i64} : tensor<2x8x32xf32>, tensor<i64>
    ```
  }];
  let arguments = (ins Peft_FloatTensor:$input, Peft_StepScalar:$step,
                       F64Attr:$p, I64Attr:$seed, I64Attr:$stream);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $step attr-dict `:` type($input) `,` type($step)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    double getProbability() { return getP().convertToDouble(); }
    // I64Attr getters return uint64_t; the mask uses the bits as given.
    uint64_t getSeedBits() { return getSeed(); }
    uint64_t getStreamBits() { return getStream(); }
  }];
}

#endif // PEFT_PEFT_DROPOUT_OPS
