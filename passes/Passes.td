//===- Passes.td - peftc passes ------------------------------*- tablegen -*-===//
//
// Every pass of the training pipeline, each runnable alone in peft-opt and
// tested by test/lit/passes/<pass-name>.mlir. docs/training-ir.md describes
// the IR each one expects and produces.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_PASSES
#define PEFT_PASSES

include "mlir/Pass/PassBase.td"

def DifferentiateTrainable : Pass<"peft-differentiate", "::mlir::ModuleOp"> {
  let summary = "Reverse-mode gradient of the loss for the trainable params";
  let description = [{
    Adds `func.func @train_step`, with the arguments of the loss function
    (`func`, default `@loss`, whose first result is a one-element float
    loss), returning the loss and one gradient per trainable `peft.param`
    in declaration order; each gradient result carries
    `peft.grad_of = @param`.

    Activity analysis as ONNX Runtime's gradient builder does it: a value is
    active when it depends on a trainable param (through `peft.use`) and the
    loss depends on it. Only active values get cotangents, so a frozen weight
    gets no weight gradient while the input gradient still flows through it,
    and ops below the lowest trainable op get no backward ops at all.
    Cotangents of values with several users, and of a param read more than
    once (tied weights), are summed. Backward ops reuse the forward SSA
    values they need; the memory planner decides what is kept. The rules
    live in passes/autodiff/GradientRules.cpp.
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"loss\"",
           "The function whose first result is the scalar loss">,
  ];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect",
                           "::mlir::func::FuncDialect"];
}

def InsertAdapters : Pass<"peft-insert-adapters", "::mlir::ModuleOp"> {
  let summary = "Applies the module's PEFT spec: adapters, trainable biases and modules";
  let description = [{
    Reads the spec from the module's `peft.spec` attribute, finds the PyTorch
    modules of `@forward` (passes/analysis/ModuleNames.h) and resolves the
    spec's targets on them with PEFT's rules. Then, per method:

    - LoRA/DoRA: the targeted `nn.matmul` becomes `peft.lora`/`peft.dora`
      (an `nn.transpose` of the weight folds into `weight_layout`), with new
      trainable params under PEFT's keys: `base_model.model.<module>.lora_A.weight`
      [r, in] (init `kaiming_uniform`, or `gaussian`), `...lora_B.weight`
      [out, r] (`zeros`; `kaiming_uniform` with `init_lora_weights: false`),
      DoRA's `...lora_magnitude_vector` [out] (`dora_norm`);
    - IA3: `peft.ia3` on the module's output (after its bias), or on its input
      for feed-forward modules, reading `...ia3_l` ([out, 1] or [1, in] as
      PEFT stores it; `ones`, or `normal`);
    - `bias: all|lora_only`, BitFit: the bias params become trainable;
    - `modules_to_save`: a trainable copy of the module's params
      (`base_model.model.<module>.weight`, same bytes) replaces them in the
      module; the original stays frozen;
    - freeze-layers, full fine-tuning: the modules' params become trainable
      in place (a weight TorchScript folded into a copy of a tied embedding is
      re-tied to it first, so it trains once).

    Every param made trainable gets `peft.key` (the name PEFT saves it under;
    `peft.key_transposed` when the tensor there is the param's transpose),
    new ones `peft.method`. With `init-adapter`, those params read their
    initial values from PEFT's `adapter_model.safetensors` instead
    (passes/AdapterInit.h). With `lora_dropout` > 0, a `peft.dropout`
    (seed `training.seed`, one `stream` per adapted module, numbered in
    order) feeds the adapter's `adapter_input`, as PEFT applies
    lora_dropout to the low-rank path's input only; its mask is selected by
    the function's step counter, an i64 scalar argument marked `peft.step`,
    added first when the function has none.
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function to adapt">,
    Option<"initAdapter", "init-adapter", "std::string", /*default=*/"\"\"",
           "Directory of a PEFT adapter (save_pretrained layout) to start from">,
  ];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect",
                           "::mlir::func::FuncDialect"];
}

def FreezeParams : Pass<"peft-freeze", "::mlir::ModuleOp"> {
  let summary = "Freezes every param the spec does not train";
  let description = [{
    A param stays trainable only if peft-insert-adapters made it so (it
    carries `peft.key`); every other param is frozen. Fails when nothing is
    trainable, and warns about a trainable param no function reads.
  }];
  let dependentDialects = ["::peft::pir::PeftDialect"];
}

def BuildLoss : Pass<"peft-build-loss", "::mlir::ModuleOp"> {
  let summary = "Adds func @loss: the model function plus the spec's loss";
  let description = [{
    Clones `@forward` into `@loss` and ends it with the loss of the spec's
    `training.loss`: `peft.cross_entropy` of the output named `logits`
    against a new i64 argument named `labels` (shape from
    `training.inputs.labels`, else the logits' without the class axis;
    `shift: causal` and `ignore_index` as given), `peft.mse` of an output
    against a new float argument, or a scalar model output. `@loss` returns
    the loss alone, a scalar; ops only other outputs needed are dropped.
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function the loss is built on">,
  ];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect",
                           "::mlir::func::FuncDialect"];
}

def Optimizer : Pass<"peft-optimizer", "::mlir::ModuleOp"> {
  let summary = "Appends gradient clipping, the lr schedule and the AdamW/SGD update";
  let description = [{
    Runs on a module with `@train_step` from peft-differentiate (the loss,
    then one gradient per trainable param with `peft.grad_of = @param`). The
    settings come from the spec's `training:` section (the module's
    `peft.spec` attribute) when the module has one, else from the options;
    `total-steps` fills in a spec that leaves the schedule's length unset.

    Adds the optimizer state as `peft.param`s initialised to zeros, each with
    `peft.state_of = @param`: `<param>.exp_avg` and `<param>.exp_avg_sq`
    (AdamW), `<param>.momentum_buffer` (SGD with momentum). The update of one
    optimizer step is, in Hugging Face Trainer's order: clipping by global
    L2 norm (`peft.clip_grad_norm`, when max_grad_norm > 0; otherwise the
    norm is still computed, for the metrics), the learning rate
    (`peft.lr_schedule`), one `peft.adamw`/`peft.sgd` per param (no weight
    decay for biases and norm weights unless the spec's `no_decay` says
    otherwise), and `peft.assign` of every new param and state value. The
    1-based optimizer step is an i64 scalar argument marked `peft.step`: the
    runtime owns the counter. A `peft.step` argument `@train_step` already
    has (the step counter of `peft.dropout`) is that argument when each call
    is one optimizer step; with accumulation it stays the micro-batch
    counter and `@apply_update` gets its own.

    With gradient_accumulation_steps = 1 the update is appended to
    `@train_step`, which takes the step first and returns the loss, the
    global gradient norm and the lr. With K > 1, `@train_step` stays a
    micro-batch step (loss and gradients, unchanged) and the update is
    `@apply_update(%step, %grad_sums...) -> (grad_norm, lr)`, which takes
    the sums of the K micro-batches' gradients and scales them by 1/K
    (docs/training-ir.md, "Gradient accumulation").
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"train_step\"",
           "The step function peft-differentiate made">,
    Option<"optimizer", "optimizer", "std::string", /*default=*/"\"adamw\"",
           "adamw or sgd">,
    Option<"lr", "lr", "double", /*default=*/"5e-5", "Base learning rate">,
    Option<"beta1", "beta1", "double", /*default=*/"0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", /*default=*/"0.999", "AdamW beta2">,
    Option<"eps", "eps", "double", /*default=*/"1e-8", "AdamW eps">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.0",
           "Weight decay (decoupled for AdamW, added to the gradient for SGD)">,
    ListOption<"noDecay", "no-decay", "std::string",
               "Params without weight decay: bias, norm, or regular "
               "expressions searched in the param name (default: bias,norm)">,
    Option<"momentum", "momentum", "double", /*default=*/"0.0", "SGD momentum">,
    Option<"nesterov", "nesterov", "bool", /*default=*/"false",
           "SGD Nesterov momentum">,
    Option<"maxGradNorm", "max-grad-norm", "double", /*default=*/"1.0",
           "Clip gradients to this global L2 norm (0: no clipping)">,
    Option<"schedule", "schedule", "std::string", /*default=*/"\"linear\"",
           "constant, linear or cosine">,
    Option<"warmup", "warmup", "int64_t", /*default=*/"0",
           "Warmup steps">,
    Option<"warmupRatio", "warmup-ratio", "double", /*default=*/"0.0",
           "Warmup as a share of total-steps (when warmup is 0)">,
    Option<"totalSteps", "total-steps", "int64_t", /*default=*/"0",
           "Optimizer steps of the run (linear and cosine schedules)">,
    Option<"numCycles", "num-cycles", "double", /*default=*/"0.5",
           "Cosine schedule cycles">,
    Option<"accumulation", "accumulation", "int64_t", /*default=*/"1",
           "Gradient accumulation steps">,
  ];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect",
                           "::mlir::func::FuncDialect"];
}

def MergeAdapters : Pass<"peft-merge-adapters", "::mlir::ModuleOp"> {
  let summary = "Folds LoRA, DoRA, IA3 and sparse deltas into the frozen weights (inference IR)";
  let description = [{
    Every `peft.lora`/`peft.dora` of the model function becomes `nn.matmul`
    of its input with a merged weight, in the frozen weight's layout
    (`transpose_rhs` for `out_in`), and every `peft.ia3` disappears into the
    weight (and bias) of its linear module. Weights are never attributes, so
    the merged values are computed: the pass adds
    `func.func @merge_adapters()`, which reads the frozen weights and the
    adapters and `peft.assign`s each merged tensor to a new frozen param
    (`<module>.weight.merged`, `<module>.bias.merged`, marked
    `peft.computed_by = @merge_adapters`); run it once before the model
    function. As PEFT merges: LoRA `W + s·B·A`; DoRA
    `m ⊙ (W + s·B·A) / ‖W + s·B·A‖` with one norm per output feature; IA3
    `W·diag(l)` and `bias·l` for output scaling, `diag(l)·W` for
    feed-forward (input) scaling; a sparse delta `W + scatter(delta)`
    (the `peft.sparse_delta` itself, run once). Adapter dropout is identity
    at inference.
    The adapter params stay (@merge_adapters reads them); the model
    function no longer does. docs/adapters.md, "peft-merge-adapters".
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function whose adapters are merged">,
  ];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect",
                           "::mlir::func::FuncDialect"];
}

def StepStats : Pass<"peft-step-stats", "::mlir::ModuleOp"> {
  let summary = "Prints the GEMMs, FLOPs and kept activations of a training step";
  let description = [{
    An analysis of `@train_step` as peft-differentiate (and peft-optimizer)
    made it; prints to stdout and changes nothing. Forward ops are the ops
    the loss (result 0) depends on; backward ops the rest up to the update
    (which peft-optimizer starts with `peft.lr_schedule`). Counted: forward
    and backward GEMMs and their FLOPs (2·M·N·K, batch dims multiplied in;
    `peft.lora`/`peft.dora` as their component GEMMs), the backward GEMMs
    whose result is a param's gradient (per param, and any frozen param
    given one, which must be none), the backward op count, and the forward
    activations (values computed from the step's inputs) the backward reads,
    each once, in bytes; also per layer (PEFT's layer index of the op's
    module). passes/StepStats.h, docs/training-ir.md "Step statistics".
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"train_step\"",
           "The step function">,
  ];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect",
                           "::mlir::func::FuncDialect"];
}

//===----------------------------------------------------------------------===//
// Lowering to kernels (docs/codegen.md): passes/lowering/.
//===----------------------------------------------------------------------===//

def Decompose : Pass<"peft-decompose", "::mlir::ModuleOp"> {
  let summary = "Rewrites the adapter and loss ops into nn ops";
  let description = [{
    In every function: `peft.lora` becomes `x·W' + s·((x̃·Aᵀ)·Bᵀ)` (B·A is
    never formed), `peft.dora` PEFT's `x·W' + ((m/n − 1)·(x̃·W') +
    (m/n)·(x̃·Aᵀ·Bᵀ)·s)` with the norm `n` expanded into [r, out] and [r, r]
    products, `peft.ia3` a broadcast multiply, `peft.mse` and
    `peft.cross_entropy` (causal shift, ignore_index, mean over counted
    positions) their reductions, all in the order of operations of the
    reference kernels (codegen/reference/PeftKernels.cpp). `nn.attention`
    becomes its GEMMs and softmax (passes/lowering/ExpandAttention.cpp).
    `peft.loreft` and `peft.nodireft` become GEMMs over all rows and an
    `nn.where` on the row mask, the Householder map and its gradient
    `peft.householder_sweep` and GEMMs (passes/lowering/DecomposeReft.cpp).
    The optimizer ops, params, uses and assigns stay: the kernel emitter
    generates them.
  }];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect"];
}

def LowerGemms : Pass<"peft-lower-gemms", "::mlir::ModuleOp"> {
  let summary = "Turns float nn.matmul into kern.gemm library calls";
  let description = [{
    2-D products map directly; batched ones are flattened to one batch
    dimension (through nn.reshape views) when the operands' batch dims are
    equal or one operand has none, which the GEMM then broadcasts. A
    left operand with batch dims against a 2-D right one becomes a single
    2-D GEMM over all its rows. An `nn.transpose` of the last two dims of an
    operand folds into `trans_a`/`trans_b`, and an `nn.add` of a [n] vector
    that is the product's only user into `bias`. Integer products, and
    batch dims that broadcast partially, stay nn.matmul.
  }];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::kern::KernDialect"];
}

def OutlineKernels : Pass<"peft-outline-kernels", "::mlir::ModuleOp"> {
  let summary = "Outlines every op but GEMMs and views into kernel functions";
  let description = [{
    In every function with a body, each op other than peft.use,
    peft.assign, kern.gemm, nn.reshape (a view), nn.constant of a small
    tensor and func.return moves into a private `func.func @k<N>` marked
    `kern.kernel` (tensor arguments, tensor results) and is replaced by a
    `kern.launch` of it. A maximal connected group of elementwise ops
    (dialects/kern/Elementwise.h) whose results share one shape becomes one
    kernel whose results are the values used outside it; a group never
    takes in an op that would make it depend on itself through an outside
    op. Every other op is a kernel of its own. The assigns end the function.
  }];
  let options = [
    Option<"smallConstantBytes", "small-constant-bytes", "int64_t",
           /*default=*/"256",
           "Constants up to this size stay in the function (program constants)">,
  ];
  let dependentDialects = ["::peft::kern::KernDialect",
                           "::mlir::func::FuncDialect"];
}

def PlanMemory : Pass<"peft-plan-memory", "::mlir::ModuleOp"> {
  let summary = "Static liveness-based arena plan with buffer reuse";
  let description = [{
    Over each function's op order: every result of kern.gemm/kern.launch,
    every function argument and every returned value gets an arena range
    (offsets 64-byte aligned) from its definition to its last use (to the
    end for returned values), best-fit reusing freed ranges; nn.reshape
    results are views of their source, peft.use values param buffers and
    small constants program constants. The functions share one arena (they
    never run at once). Recorded as `kern.offsets` on each op,
    `kern.arg_offsets` on each function, `kern.arena_bytes` (the peak) and
    `kern.buffer_bytes_sum` (no reuse) on the module.
  }];
  let options = [
    Option<"print", "print", "bool", /*default=*/"false",
           "Print the plan (peak, sum, buffers) to stdout">,
  ];
  let dependentDialects = ["::peft::kern::KernDialect"];
}

def InsertInterventions : Pass<"peft-insert-interventions", "::mlir::ModuleOp"> {
  let summary = "Applies the spec's ReFT methods: pyreft's interventions";
  let description = [{
    For each LOREFT, NODIREFT or DIREFT method of the `peft.spec` attribute,
    intervenes on the residual stream after the chosen decoder layers
    (pyvene's `block_output`: the last residual `nn.add` of the layer on the
    chain of same-shaped adds that starts at the token embedding). Positions
    come per example from the data input the spec names (`prompt_lengths`,
    added to `func` as a `[batch]` i64 argument when the model lacks it)
    through `peft.reft_positions`, as pyreft's get_intervention_locations
    computes them. Each intervention is `peft.loreft` (LOREFT), or
    `peft.nodireft` with `proj_layer.weight` (NODIREFT) or with the
    transposed orthonormal R (DIREFT); R is `peft.householder_orthogonal` of
    the trainable `rotate_layer.parametrizations.weight.original` (init −I)
    and the frozen buffer `...base` (a random orthogonal matrix), as
    PyTorch's `orthogonal` parametrization. Params are named by pyvene's key,
    `layer_<L>_comp_block_output_unit_pos_nunit_1#<k>.<pyreft name>`; with
    separate weights for first and last positions, `#0` takes the first
    positions and `#1` the last (pyreft doubles its layer list).
    `init-interventions` reads every new param (the base included) from a
    safetensors file by name. With `dropout` > 0, pyreft's dropout of the
    intervention's whole output on its rows: `peft.dropout` of the result
    (training.seed, one stream each) kept by `nn.where` on the rows'
    `peft.intervention_mask`, the other rows unchanged.
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function to intervene on">,
    Option<"initInterventions", "init-interventions", "std::string",
           /*default=*/"\"\"",
           "A safetensors file (or a directory holding "
           "interventions.safetensors) with the initial value of every "
           "intervention param">,
  ];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect",
                           "::mlir::func::FuncDialect"];
}

def InsertPrefixTuning : Pass<"peft-insert-prefix-tuning", "::mlir::ModuleOp"> {
  let summary = "Applies the spec's PREFIX_TUNING: key/value prefixes in every nn.attention";
  let description = [{
    PEFT's prefix tuning on a model whose attention is raised to
    `nn.attention` (runs peft-raise-attention first when `func` has no
    nn.attention). Creates the trainable
    `prompt_embeddings` [P, L*2*token_dim] (init normal), or with
    `prefix_projection` PEFT's PrefixEncoder params
    `prompt_encoder.embedding.weight` [P, token_dim],
    `prompt_encoder.transform.{0,2}.{weight,bias}` (nn.Linear inits) and the
    function `@prefix_prompt_embeddings` computing what PEFT saves; computes
    the table once at the top of `func`, and sets each layer's
    `prefix_key`/`prefix_value` [Hkv, P, D] from it in PEFT's layout (layer
    l reads planes 2l and 2l+1 of view(P, 2L, Hkv, D)). Replaces the model's
    position ids (0..T-1 constants feeding rotary cos/sin or a
    position-embedding lookup) by P..P+T-1, as transformers numbers tokens
    after a past of P. token_dim, num_layers and num_attention_heads, when
    the spec gives them, must match the model.
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function">,
  ];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect",
                           "::mlir::func::FuncDialect"];
}

def InsertSparse : Pass<"peft-insert-sparse", "::mlir::ModuleOp"> {
  let summary = "Applies the spec's SPARSE methods: a delta on chosen weight entries";
  let description = [{
    For each SPARSE method of the `peft.spec` attribute and each linear
    module its `target_modules` select (LoRA's matching), picks
    k = ceil(density · numel) entries of the module's frozen weight, in
    PyTorch's [out, in] layout, flat row-major: `magnitude` takes the k
    largest |W| (ties: the lower index), `random` the k entries with the
    smallest Philox draws (passes/InsertSparse.h). The weight's `peft.use`
    becomes `peft.sparse_delta` of it with two new params:
    `<module>.sparse_indices` (frozen i64 [k], the chosen indices in
    increasing order, held in the IR as its `value`) and
    `<module>.sparse_delta` (trainable [k], `zeros`), both saved with the
    adapter under their names. The weight's values are read at compile
    time (the selection needs them); the delta, its gradient and its
    optimizer state are k-sized.
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"forward\"",
           "The model function to adapt">,
  ];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect",
                           "::mlir::func::FuncDialect"];
}

def RaiseAttention : Pass<"peft-raise-attention", "::mlir::ModuleOp"> {
  let summary = "Raises the imported attention pattern to nn.attention";
  let description = [{
    In every function, each `softmax(QKᵀ·c + masks)·V` the exporters write
    becomes one `nn.attention` (dialects/nn/NNAttentionOps.td): Q·Kᵀ an
    `nn.matmul` of rank 4 ([B, H, T, D] × [B, H, D, S], K transposed by an
    `nn.transpose` or the matmul's `transpose_rhs`) or rank 3 ([B·H, T, D],
    lifted to rank 4 through the reshape that flattened the heads); scaling
    by constants (`nn.mul`/`nn.div` by a scalar expression of constants, on
    the product or directly on Q or K) folded into `scale`; then any number
    of additive masks (`nn.add` of a float tensor broadcastable to the
    logits) and `nn.where(cond, logits, fill)` with a constant fill <= -1e30
    (which masks exactly as adding where(cond, 0, fill) does): a causal
    `cond` (a constant, or a frozen buffer param whose bytes are read, seen
    through slices) becomes `causal`, another one an additive mask;
    softmax over the last axis; the product with V. K and V repeated over
    query heads by reshape/broadcast_to/reshape (grouped-query attention)
    are read before the repeat. Rotary embeddings stay outside: Q and K
    arrive rotated. Patterns whose intermediate values have other users, a
    softmax over another axis, a scaling after a mask, or a mask that is
    not additive stay as they are. The ops of a raised pattern are erased.
  }];
  let dependentDialects = ["::peft::nn::NNDialect"];
}

def EmitLoops : Pass<"peft-emit-loops", "::mlir::ModuleOp"> {
  let summary = "Replaces each kern.kernel function by its loop kernel";
  let description = [{
    Every `func.func` with `kern.kernel` (tensor arguments and results)
    becomes the loop kernel of the same name (codegen/cpu/LoopEmitter.h): a
    function on flat memrefs, arguments then results then `begin`/`end`,
    whose body is one `scf.for` over [begin, end) of the parallel dimension
    (`kern.parallel`) holding scalar arith/math/scf code and
    memref.load/store; `kern.extent` holds the dimension's extent. Fused
    elementwise kernels evaluate every op's scalar formula per element;
    other kernels use their op's loop emitter. For inspection and tests:
    the compiler itself builds loop kernels in a separate module
    (extractLoopKernels) and keeps the kern.launch callers intact.
  }];
  let options = [
    Option<"chunk", "chunk", "int64_t", /*default=*/"1024",
           "Elements of the inner run per parallel iteration of a fused "
           "elementwise kernel (1: one element per iteration, as on a GPU)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect"];
}

#endif // PEFT_PASSES
