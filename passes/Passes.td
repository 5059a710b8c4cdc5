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
    (passes/AdapterInit.h). LoRA dropout > 0 is refused until the peft
    dialect has a dropout op for `adapter_input`.
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
    runtime owns the counter.

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

#endif // PEFT_PASSES
