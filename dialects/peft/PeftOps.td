//===- PeftOps.td - peft ops and attributes ---------------*- tablegen -*-===//
#ifndef PEFT_PEFT_OPS
#define PEFT_PEFT_OPS

include "dialects/peft/PeftBase.td"

def Peft_StorageAttr : Peft_Attr<"Storage", "storage"> {
  let summary = "Where a parameter's bytes live: a byte range of a file";
  let description = [{
    Little-endian, row-major bytes of the parameter's element type at
    `offset` in `file` (an `.onnx` file's raw_data, its external data file,
    or a safetensors file). The runtime and the reference evaluator map the
    file; weights are never copied into the IR.
  }];
  let parameters = (ins StringRefParameter<"path of the file">:$file,
                        "int64_t":$offset, "int64_t":$length);
  let assemblyFormat = "`<` $file `,` `offset` `=` $offset `,` `length` `=` $length `>`";
}

def Peft_ParamOp : Peft_Op<"param", [Symbol]> {
  let summary = "A named model parameter: frozen or trainable, with its storage";
  let description = [{
    Declared at module level. `storage` points at the bytes of a frozen or
    pre-initialised parameter; `init` names how a new parameter (an adapter)
    is initialised; `value` holds the rare initializer that has no raw byte
    range (integer data stored as varints). Functions read a parameter with
    `peft.use`.

    ```mlir
    peft.param @"bert.pooler.dense.weight" : tensor<32x32xf32> frozen
        storage #peft.storage<"/m/bert.onnx", offset = 1234, length = 4096>
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       TypeAttrOf<AnyStaticShapeTensor>:$type,
                       UnitAttr:$trainable,
                       OptionalAttr<Peft_StorageAttr>:$storage,
                       OptionalAttr<StrAttr>:$init,
                       OptionalAttr<ElementsAttr>:$value);
  let assemblyFormat = [{
    $sym_name `:` $type (`trainable` $trainable^) : (`frozen`)?
    (`storage` $storage^)? (`init` $init^)? (`value` $value^)? attr-dict
  }];
  let hasVerifier = 1;
  let builders = [
    OpBuilder<(ins "::llvm::StringRef":$name, "::mlir::RankedTensorType":$type), [{
      $_state.addAttribute(getSymNameAttrName($_state.name), $_builder.getStringAttr(name));
      $_state.addAttribute(getTypeAttrName($_state.name), ::mlir::TypeAttr::get(type));
    }]>
  ];
  let extraClassDeclaration = [{
    ::mlir::RankedTensorType getTensorType() {
      return ::llvm::cast<::mlir::RankedTensorType>(getType());
    }
    bool isFrozen() { return !getTrainable(); }
  }];
}

def Peft_UseOp : Peft_Op<"use", [Pure,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "Reads a parameter as a tensor value";
  let arguments = (ins FlatSymbolRefAttr:$param);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "$param attr-dict `:` type($result)";
}


def Peft_AssignOp : Peft_Op<"assign", [
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    MemoryEffects<[MemWrite]>]> {
  let summary = "Writes a new value to a parameter at the end of a step";
  let description = [{
    The optimizer's updates: `@param` holds `value` from the next step on.
    Within one call of the function every `peft.use` still reads the value the
    parameter had when the call began (uses are pure), so the assigns of a
    step act together when it returns. A parameter is assigned at most once
    per call. The value's type must be the parameter's type.

    ```mlir
    peft.assign @"lora_A.q", %new_a : tensor<4x32xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$param, AnyStaticShapeTensor:$value);
  let assemblyFormat = "$param `,` $value attr-dict `:` type($value)";
}

//===----------------------------------------------------------------------===//
// Adapters
//===----------------------------------------------------------------------===//

def Peft_FloatTensor : StaticShapeTensorOf<[AnyFloat]>;
def Peft_IntTensor : StaticShapeTensorOf<[AnySignlessInteger]>;
def Peft_FloatScalar : 0DTensorOf<[AnyFloat]>;
def Peft_StepScalar : 0DTensorOf<[I64]>;

def Peft_LoraOp : Peft_Op<"lora", [Pure, InferTypeOpAdaptor,
    OptionalTypesMatchWith<"adapter_input has the input's type", "input",
                           "adapter_input", "$_self">]> {
  let summary = "A frozen linear map plus a scaled low-rank update (LoRA)";
  let description = [{
    `y = x·W + scale·(x̃·Aᵀ)·Bᵀ`, as PEFT's `lora.Linear` without its bias
    (a bias stays a separate add). `x̃` is `adapter_input` when given, else
    `x`: adapter dropout is its own op, applied by the insert pass to the
    copy of `x` that only the low-rank path reads. `x: [..., in]`,
    `A: [r, in]` (`lora_A.weight`), `B: [out, r]` (`lora_B.weight`),
    result `[..., out]`. `scale` is `lora_alpha / r` (rsLoRA:
    `lora_alpha / √r`).

    `weight_layout` says how the graph multiplies the frozen weight `W`:
    `"in_out"` for `W: [in, out]` used as `x·W` (TorchScript exports a Linear
    as `MatMul(x, Wᵀ)` with the transposed initializer; GPT-2's Conv1D),
    `"out_in"` for `W: [out, in]` used as `x·Wᵀ` (Gemm with transB = 1,
    PyTorch's Linear layout). `B·A` is never formed: the update costs
    `2·r·(in + out)` FLOPs per row.

    ```mlir
    %y = peft.lora %x, %w, %a, %b {scale = 2.0 : f64, weight_layout = "in_out"}
        : tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>,
          tensor<64x4xf32> -> tensor<2x8x64xf32>
    %z = peft.lora %x, %w, %a, %b adapter_input %dropped {...} : ...
    ```
  }];
  let arguments = (ins Peft_FloatTensor:$input, Peft_FloatTensor:$weight,
                       Peft_FloatTensor:$lora_a, Peft_FloatTensor:$lora_b,
                       Optional<Peft_FloatTensor>:$adapter_input,
                       F64Attr:$scale, StrAttr:$weight_layout);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $lora_a `,` $lora_b
    (`adapter_input` $adapter_input^)? attr-dict `:` type($input) `,`
    type($weight) `,` type($lora_a) `,` type($lora_b) `->` type($result)
  }];
  let extraClassDeclaration = [{
    /// True when the frozen weight is stored [out, in] (used as x·Wᵀ).
    bool isWeightOutIn() { return getWeightLayout() == "out_in"; }
    int64_t getRank() {
      return ::llvm::cast<::mlir::RankedTensorType>(getLoraA().getType())
          .getDimSize(0);
    }
  }];
}

def Peft_DoraOp : Peft_Op<"dora", [Pure, InferTypeOpAdaptor,
    OptionalTypesMatchWith<"adapter_input has the input's type", "input",
                           "adapter_input", "$_self">]> {
  let summary = "Weight-decomposed low-rank adaptation (PEFT's use_dora)";
  let description = [{
    `W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖` with the L2 norm taken over the
    input axis (one norm `n` per output feature, whatever `weight_layout`
    says about storage), applied as the graph applies `W` (see `peft.lora`
    for the operands and `weight_layout`). `magnitude: [out]` is PEFT's
    `lora_magnitude_vector`. The result is computed as PEFT does, never
    forming `W'`: with `x̃` = `adapter_input` (dropout applied by its own op)
    or `x` when absent,
    `y = x·W + (m/n − 1)·(x̃·W) + (m/n)·s·(x̃·Aᵀ)·Bᵀ`,
    which without dropout equals `(m/n)·(x·W + s·x·Aᵀ·Bᵀ)`. Computing `n`
    needs `W + s·B·A` (one row or column at a time); nothing else does.

    Backward treats `n` as a constant (`n` is detached, as in PEFT and
    section 4.3 of the DoRA paper): gradients flow to `m`, `A`, `B` and `x`
    through `m/n` and the products only.
  }];
  let arguments = (ins Peft_FloatTensor:$input, Peft_FloatTensor:$weight,
                       Peft_FloatTensor:$lora_a, Peft_FloatTensor:$lora_b,
                       Peft_FloatTensor:$magnitude,
                       Optional<Peft_FloatTensor>:$adapter_input,
                       F64Attr:$scale, StrAttr:$weight_layout);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $lora_a `,` $lora_b `,` $magnitude
    (`adapter_input` $adapter_input^)? attr-dict `:`
    type($input) `,` type($weight) `,` type($lora_a) `,` type($lora_b) `,`
    type($magnitude) `->` type($result)
  }];
  let extraClassDeclaration = [{
    bool isWeightOutIn() { return getWeightLayout() == "out_in"; }
    int64_t getRank() {
      return ::llvm::cast<::mlir::RankedTensorType>(getLoraA().getType())
          .getDimSize(0);
    }
  }];
}

def Peft_Ia3Op : Peft_Op<"ia3", [Pure, InferTypeOpAdaptor]> {
  let summary = "IA3: learned per-feature scaling of the last axis";
  let description = [{
    `y = h ⊙ l` with `l: [features]` broadcast along the last axis of `h`
    (PEFT's `ia3_l`). The insert pass decides where it goes: on the outputs
    of the key/value projections, or on the input of the feed-forward
    down-projection.
  }];
  let arguments = (ins Peft_FloatTensor:$input, Peft_FloatTensor:$factors);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $factors attr-dict `:` type($input) `,` type($factors) `->`
    type($result)
  }];
}

include "dialects/peft/PeftReftOps.td"
include "dialects/peft/PeftDropoutOps.td"
include "dialects/peft/PeftSparseOps.td"

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

def Peft_CrossEntropyOp : Peft_Op<"cross_entropy", [Pure, InferTypeOpAdaptor]> {
  let summary = "Mean token cross-entropy over non-ignored labels";
  let description = [{
    `logits: [..., V]`, `labels: [...]` (the logits' shape without its last
    axis). Log-softmax over the last axis, shifted by the row maximum so it
    never overflows; the result (a scalar of the logits' element type) is
    the mean of `-log p[label]` over the positions whose label is not
    `ignore_index`, as `torch.nn.functional.cross_entropy` with
    `reduction="mean"`. No such position gives NaN (0/0), as PyTorch.

    `shift = "causal"` is Hugging Face's causal-LM loss: the logits at
    position t are scored against the label at t + 1 along the last label
    axis (`logits[..., :-1, :]` against `labels[..., 1:]`), and the last
    position is ignored. A label outside `[0, V)` that is not
    `ignore_index` is an error at run time.
  }];
  let arguments = (ins Peft_FloatTensor:$logits, Peft_IntTensor:$labels,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                       DefaultValuedStrAttr<StrAttr, "none">:$shift);
  let results = (outs Peft_FloatScalar:$result);
  let assemblyFormat = [{
    $logits `,` $labels attr-dict `:` type($logits) `,` type($labels) `->`
    type($result)
  }];
  let extraClassDeclaration = [{
    bool isCausal() { return getShift() == "causal"; }
    /// I64Attr getters return uint64_t; the label value is signed.
    int64_t getIgnoredLabel() { return static_cast<int64_t>(getIgnoreIndex()); }
  }];
}

def Peft_MseOp : Peft_Op<"mse", [Pure, InferTypeOpAdaptor,
    AllTypesMatch<["prediction", "target"]>]> {
  let summary = "Mean squared error: mean((prediction - target)²)";
  let description = [{
    `torch.nn.functional.mse_loss` with `reduction="mean"` over operands of
    one type; the result is a scalar of their element type.
  }];
  let arguments = (ins Peft_FloatTensor:$prediction, Peft_FloatTensor:$target);
  let results = (outs Peft_FloatScalar:$result);
  let assemblyFormat = [{
    $prediction `,` $target attr-dict `:` type($prediction) `->` type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Optimizer updates
//===----------------------------------------------------------------------===//

def Peft_AdamWOp : Peft_Op<"adamw", [Pure, InferTypeOpAdaptor,
    AllTypesMatch<["param", "grad", "exp_avg", "exp_avg_sq"]>]> {
  let summary = "One torch.optim.AdamW step for one parameter";
  let description = [{
    PyTorch's single-tensor AdamW (amsgrad and maximize off), in its order
    of operations; `step` is the 1-based count of optimizer steps including
    this one, `lr` this step's learning rate:

    ```
    if weight_decay != 0: p = p·(1 − lr·weight_decay)      (decoupled)
    m = lerp(m, g, 1 − beta1)
    v = v·beta2 + (1 − beta2)·g·g
    step_size = lr / (1 − beta1^step)
    denom = √v / (1 − beta2^step)^0.5 + eps
    p = p − step_size·m / denom
    ```

    Results: the new parameter, `exp_avg` and `exp_avg_sq` (PyTorch's state
    names), each of the parameter's type. The reference kernel rounds every
    intermediate tensor to the parameter's storage type where PyTorch's
    in-place ops would.
  }];
  let arguments = (ins Peft_FloatTensor:$param, Peft_FloatTensor:$grad,
                       Peft_FloatTensor:$exp_avg, Peft_FloatTensor:$exp_avg_sq,
                       Peft_FloatScalar:$lr, Peft_StepScalar:$step,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps,
                       F64Attr:$weight_decay);
  let results = (outs Peft_FloatTensor:$new_param,
                      Peft_FloatTensor:$new_exp_avg,
                      Peft_FloatTensor:$new_exp_avg_sq);
  let assemblyFormat = [{
    $param `,` $grad `,` $exp_avg `,` $exp_avg_sq `,` $lr `,` $step attr-dict
    `:` type($param) `,` type($lr) `,` type($step)
  }];
  let hasVerifier = 1;
}

def Peft_SgdOp : Peft_Op<"sgd", [Pure, InferTypeOpAdaptor,
    AllTypesMatch<["param", "grad", "momentum_buffer"]>]> {
  let summary = "One torch.optim.SGD step for one parameter";
  let description = [{
    PyTorch's single-tensor SGD (maximize off); `step` is 1-based:

    ```
    if weight_decay != 0: g = g + weight_decay·p
    if momentum != 0:
      buf = g                                   on step 1
      buf = buf·momentum + (1 − dampening)·g    afterwards
      g = nesterov ? g + momentum·buf : buf
    p = p − lr·g
    ```

    Results: the new parameter and the momentum buffer (returned unchanged
    when momentum is 0, where PyTorch keeps none). Nesterov needs a positive
    momentum and zero dampening, as PyTorch requires.
  }];
  let arguments = (ins Peft_FloatTensor:$param, Peft_FloatTensor:$grad,
                       Peft_FloatTensor:$momentum_buffer,
                       Peft_FloatScalar:$lr, Peft_StepScalar:$step,
                       DefaultValuedAttr<F64Attr, "0.0">:$momentum,
                       DefaultValuedAttr<F64Attr, "0.0">:$dampening,
                       DefaultValuedAttr<BoolAttr, "false">:$nesterov,
                       DefaultValuedAttr<F64Attr, "0.0">:$weight_decay);
  let results = (outs Peft_FloatTensor:$new_param,
                      Peft_FloatTensor:$new_momentum_buffer);
  let assemblyFormat = [{
    $param `,` $grad `,` $momentum_buffer `,` $lr `,` $step attr-dict `:`
    type($param) `,` type($lr) `,` type($step)
  }];
  let hasVerifier = 1;
}

def Peft_ClipGradNormOp : Peft_Op<"clip_grad_norm", [Pure, InferTypeOpAdaptor]> {
  let summary = "Clipping by global L2 norm (torch.nn.utils.clip_grad_norm_)";
  let description = [{
    `total = ‖(‖g₁‖, …, ‖gₖ‖)‖₂` (the L2 norm of the per-tensor L2 norms, as
    PyTorch stacks them), `coef = min(max_norm / (total + 1e-6), 1)`;
    results: every gradient times `coef`, then `total` (a scalar of the
    gradients' element type). A non-finite total propagates, as PyTorch
    does with `error_if_nonfinite=False`.
  }];
  let arguments = (ins Variadic<Peft_FloatTensor>:$grads, F64Attr:$max_norm);
  let results = (outs Variadic<Peft_FloatTensor>:$clipped,
                      Peft_FloatScalar:$total_norm);
  let assemblyFormat = "$grads attr-dict `:` type($grads)";
}

def Peft_LrScheduleOp : Peft_Op<"lr_schedule", [Pure]> {
  let summary = "The learning rate of an optimizer step (transformers' schedules)";
  let description = [{
    `lr = base_lr · λ(step − 1)` where `step` is the 1-based optimizer step
    (the same counter `peft.adamw` takes): Hugging Face's Trainer steps its
    `LambdaLR` after each optimizer step, so step k runs with `λ(k − 1)`.
    With `w = warmup_steps`, `T = total_steps`, `k = step − 1`:

    - warmup, all kinds: `k < w` gives `k / max(1, w)`;
    - `constant`: 1 (`get_constant_schedule_with_warmup`; with `w = 0`,
      `get_constant_schedule`);
    - `linear`: `max(0, (T − k) / max(1, T − w))`;
    - `cosine`: `p = (k − w) / max(1, T − w)`,
      `max(0, 0.5·(1 + cos(π·num_cycles·2·p)))` (`num_cycles` 0.5 by default).

    The result type (a float scalar) is the builder's choice.
  }];
  let arguments = (ins Peft_StepScalar:$step, StrAttr:$kind, F64Attr:$base_lr,
                       DefaultValuedAttr<I64Attr, "0">:$warmup_steps,
                       DefaultValuedAttr<I64Attr, "0">:$total_steps,
                       DefaultValuedAttr<F64Attr, "0.5">:$num_cycles);
  let results = (outs Peft_FloatScalar:$lr);
  let assemblyFormat = "$step attr-dict `:` type($step) `->` type($lr)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    // I64Attr getters return uint64_t; these counts are signed.
    int64_t getWarmup() { return static_cast<int64_t>(getWarmupSteps()); }
    int64_t getTotal() { return static_cast<int64_t>(getTotalSteps()); }
  }];
}

#endif // PEFT_PEFT_OPS
