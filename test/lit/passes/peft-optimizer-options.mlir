// Settings from the pass options are checked before anything is built; each
// error names the setting, the value and what was expected.
// RUN: not peft-opt %s '--peft-optimizer=beta1=1.5 schedule=constant' 2>&1 | FileCheck %s --check-prefix=BETA
// RUN: not peft-opt %s '--peft-optimizer=optimizer=rmsprop' 2>&1 | FileCheck %s --check-prefix=KIND
// RUN: not peft-opt %s '--peft-optimizer=optimizer=sgd nesterov=true schedule=constant' 2>&1 | FileCheck %s --check-prefix=NESTEROV
// RUN: not peft-opt %s '--peft-optimizer=schedule=step' 2>&1 | FileCheck %s --check-prefix=SCHEDULE
// RUN: not peft-opt %s '--peft-optimizer=accumulation=0 schedule=constant' 2>&1 | FileCheck %s --check-prefix=ACCUM
// RUN: not peft-opt %s '--peft-optimizer=max-grad-norm=-1 schedule=constant' 2>&1 | FileCheck %s --check-prefix=CLIP
// RUN: not peft-opt %s '--peft-optimizer=schedule=constant no-decay=bias,*x' 2>&1 | FileCheck %s --check-prefix=REGEX
// RUN: peft-opt %s '--peft-optimizer=schedule=linear warmup-ratio=0.25 total-steps=10' | FileCheck %s --check-prefix=RATIO

peft.param @w : tensor<3xf32> trainable init "zeros"
func.func @train_step(%x: tensor<3xf32>) -> (tensor<f32>, tensor<3xf32> {peft.grad_of = @w}) {
  %l = nn.reduce_sum %x axes [0] : tensor<3xf32> -> tensor<f32>
  return %l, %x : tensor<f32>, tensor<3xf32>
}

// BETA: error: peft-optimizer: beta1 must be in [0, 1), got 1.5
// KIND: error: peft-optimizer: optimizer must be 'adamw' or 'sgd', got 'rmsprop'
// NESTEROV: error: peft-optimizer: nesterov needs a positive momentum
// SCHEDULE: error: peft-optimizer: schedule must be 'constant', 'linear' or 'cosine', got 'step'
// ACCUM: error: peft-optimizer: gradient_accumulation_steps must be >= 1, got 0
// CLIP: error: peft-optimizer: max_grad_norm must be finite and >= 0 (0: no clipping), got -1
// REGEX: error: peft-optimizer: no_decay entry '*x' is not a valid regular expression: repetition-operator operand invalid
// transformers: warmup = ceil(total * ratio) = ceil(2.5) = 3.
// RATIO: peft.lr_schedule %{{.*}} {base_lr = 5.000000e-05 : f64, kind = "linear", total_steps = 10 : i64, warmup_steps = 3 : i64}
