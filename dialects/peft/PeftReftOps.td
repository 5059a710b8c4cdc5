//===- PeftReftOps.td - representation fine-tuning ops ----*- tablegen -*-===//
//
// pyreft's interventions (LoreftIntervention, NodireftIntervention,
// DireftIntervention) and the pieces they need: PyTorch's Householder
// orthogonal parametrization, per-example intervention positions computed as
// pyreft's get_intervention_locations does, and the row mask they select.
// Included from PeftOps.td.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_PEFT_REFT_OPS
#define PEFT_PEFT_REFT_OPS

def Peft_HouseholderOrthogonalOp : Peft_Op<"householder_orthogonal",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "torch.nn.utils.parametrizations.orthogonal, Householder map";
  let description = [{
    The weight PyTorch's `orthogonal` parametrization gives a tall `[n, k]`
    matrix (`n >= k`; the default map for a non-square matrix is
    `"householder"`, with `use_trivialization=True`), from the unconstrained
    parameter `X: [n, k]` (`parametrizations.weight.original`) and the
    frozen buffer `base: [n, n]` (`parametrizations.weight[0].base`):

    ```
    A   = tril(X, -1)                       (the reflector tails)
    tau = 2 / (1 + Σ_i A[i, j]²)            (one per column j)
    H   = householder_product(A, tau)       (= H_0·H_1·…·H_{k-1}·I[n, k],
                                             H_j = I − tau_j·v_j·v_jᵀ,
                                             v_j = e_j + A[:, j])
    Q   = base · (H · diag(int(diag(X))))   (int() truncates toward zero)
    ```

    With this `tau` every `H_j` is an exact reflector, so `H` has orthonormal
    columns whatever `A` is. The diagonal of `X` only picks column signs and
    gets no gradient (PyTorch casts it to int). The gradient of `X` is
    `peft.householder_orthogonal_grad`; `base` is a buffer and gets none.
  }];
  let arguments = (ins Peft_FloatTensor:$input, Peft_FloatTensor:$base);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $base attr-dict `:` type($input) `,` type($base) `->`
    type($result)
  }];
}

def Peft_HouseholderOrthogonalGradOp : Peft_Op<"householder_orthogonal_grad",
    [Pure, InferTypeOpAdaptor, AllTypesMatch<["input", "result_grad"]>]> {
  let summary = "The cotangent of X for peft.householder_orthogonal";
  let description = [{
    Given the operands of `peft.householder_orthogonal` and the cotangent
    `dQ: [n, k]` of its result, the cotangent of `X: [n, k]`: nonzero only
    strictly below the diagonal (through the reflector tails and their
    `tau`). Backward-only: gradient rules create it, nothing differentiates
    it.
  }];
  let arguments = (ins Peft_FloatTensor:$input, Peft_FloatTensor:$base,
                       Peft_FloatTensor:$result_grad);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $base `,` $result_grad attr-dict `:` type($input) `,`
    type($base) `->` type($result)
  }];
}

def Peft_HouseholderSweepOp : Peft_Op<"householder_sweep",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "The reflectors of peft.householder_orthogonal applied one "
                "by one, every partial product kept";
  let description = [{
    With the reflectors `H_j = I − tau_j·v_j·v_jᵀ` of `X: [n, k]` (as in
    `peft.householder_orthogonal`: `v_j = e_j + tril(X, −1)[:, j]`,
    `tau_j = 2 / (1 + Σ_{i>j} X[i, j]²)`) and `M: [n, m]` (`start`; the
    first `k` columns of the identity, `I[n, k]`, when absent), the result
    `S: [k + 1, n, m]` holds

    - by default (`Q·M` built right to left): `S[k] = M`,
      `S[j] = H_j·S[j + 1]`, so `S[0] = H_0·…·H_{k−1}·M` (from `I[n, k]`:
      the Householder product, and every partial product the backward
      needs);
    - with `adjoint` (`Qᵀ·M`, left to right): `S[0] = M`,
      `S[j + 1] = H_j·S[j]`, so `S[k] = H_{k−1}·…·H_0·M`.

    Each column of `M` is swept on its own (the parallel dimension of its
    loop kernel), reading the slice before from the result: no scratch.
    peft-decompose expresses `peft.householder_orthogonal` and its gradient
    with it and GEMMs; it appears after the autodiff only (no gradient
    rule).
  }];
  let arguments = (ins Peft_FloatTensor:$input,
                       Optional<Peft_FloatTensor>:$start, UnitAttr:$adjoint);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $input (`,` $start^)? attr-dict `:` type($input) (`,` type($start)^)?
    `->` type($result)
  }];
}

def Peft_ReftPositionsOp : Peft_Op<"reft_positions",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "pyreft's intervention positions from each prompt length";
  let description = [{
    `prompt_lengths: [batch]` (integers) holds each example's
    `last_position` (its prompt length); the result `[batch, P]` (i64) holds
    the positions pyreft's `get_intervention_locations` gives for
    `first_n`/`last_n` (the spec's "f7+l7"), plus `offset` (pyreft's
    datasets prepend one pad token, so they add 1), with `-1` where pyreft
    pads. For an example of prompt length `L`, `f = min(L / 2, first_n)` and
    `l = min(L / 2, last_n)`:

    - `group = "all"` (shared weights, or one of first_n/last_n zero):
      `0 … f−1, L−l … L−1`, then pads; `P = first_n + last_n`;
    - `group = "first"` / `"last"` (one intervention each, weights not
      shared): `0 … f−1` or `L−l … L−1`, then pads;
      `P = max(first_n, last_n)`.

    pyreft itself pads at position −1 + offset (its prepended pad token,
    which attention masks and whose label is ignored); `-1` here means "no
    row", which gives the same loss and gradients.
  }];
  let arguments = (ins Peft_IntTensor:$prompt_lengths, I64Attr:$first_n,
                       I64Attr:$last_n, StrAttr:$group,
                       DefaultValuedAttr<I64Attr, "1">:$offset);
  let results = (outs StaticShapeTensorOf<[I64]>:$result);
  let assemblyFormat = [{
    $prompt_lengths attr-dict `:` type($prompt_lengths) `->` type($result)
  }];
  let extraClassDeclaration = [{
    // I64Attr getters return uint64_t; these counts are signed.
    int64_t getFirst() { return static_cast<int64_t>(getFirstN()); }
    int64_t getLast() { return static_cast<int64_t>(getLastN()); }
    int64_t getPositionOffset() { return static_cast<int64_t>(getOffset()); }
  }];
}

def Peft_InterventionMaskOp : Peft_Op<"intervention_mask", [Pure]> {
  let summary = "1 at the rows an intervention touches, 0 elsewhere";
  let description = [{
    `positions: [batch, P]` (integers; `-1` = none) to a float mask
    `[batch, T, 1]`: `mask[b, t, 0] = 1` when `t` is one of
    `positions[b, :]`. A position outside `[0, T)` other than `-1` is an
    error at run time. Gradient rules of the ReFT ops use it; no gradient
    flows through it.
  }];
  let arguments = (ins Peft_IntTensor:$positions);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $positions attr-dict `:` type($positions) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Peft_LoreftOp : Peft_Op<"loreft", [Pure, InferTypeOpAdaptor]> {
  let summary = "pyreft's LoreftIntervention at the given positions";
  let description = [{
    `y = h + (h·Wᵀ + b − h·R)·Rᵀ` on the rows `positions` names, `y = h`
    elsewhere: pyreft's `LoreftIntervention` (`act_fn` linear) with
    `R: [d, r]` its `rotate_layer.weight` (orthonormal columns, from
    `peft.householder_orthogonal`), `W: [r, d]`, `b: [r]` its
    `learned_source` Linear. `h: [batch, T, d]`, `positions: [batch, P]`
    (integers; `-1` = none; a row named twice is changed once, as pyvene's
    scatter does).
  }];
  let arguments = (ins Peft_FloatTensor:$input, Peft_FloatTensor:$rotation,
                       Peft_FloatTensor:$weight, Peft_FloatTensor:$bias,
                       Peft_IntTensor:$positions);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $rotation `,` $weight `,` $bias `,` $positions attr-dict `:`
    type($input) `,` type($rotation) `,` type($weight) `,` type($bias) `,`
    type($positions) `->` type($result)
  }];
}

def Peft_NodireftOp : Peft_Op<"nodireft", [Pure, InferTypeOpAdaptor]> {
  let summary = "pyreft's NodireftIntervention (and DireftIntervention)";
  let description = [{
    `y = h + (h·Wᵀ + b)·P` on the rows `positions` names, `y = h` elsewhere.
    With `P: [r, d]` = `proj_layer.weight` this is pyreft's
    `NodireftIntervention` (the paper's DiReFT, `h + W₂ᵀ(W₁h + b)`); with
    `P = Rᵀ` (`R` from `peft.householder_orthogonal`) it is pyreft's
    `DireftIntervention`. `W: [r, d]`, `b: [r]` are `learned_source`;
    `h`, `positions` as in `peft.loreft`.
  }];
  let arguments = (ins Peft_FloatTensor:$input, Peft_FloatTensor:$weight,
                       Peft_FloatTensor:$bias, Peft_FloatTensor:$projection,
                       Peft_IntTensor:$positions);
  let results = (outs Peft_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $bias `,` $projection `,` $positions attr-dict `:`
    type($input) `,` type($weight) `,` type($bias) `,` type($projection) `,`
    type($positions) `->` type($result)
  }];
}

#endif // PEFT_PEFT_REFT_OPS
