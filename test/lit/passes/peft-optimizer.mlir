// RUN: peft-opt %s --split-input-file --peft-differentiate '--peft-optimizer=lr=0.01 weight-decay=0.1 schedule=cosine warmup=2 total-steps=10 max-grad-norm=0.5' | FileCheck %s --check-prefix=ADAMW
// RUN: peft-opt %s --split-input-file --peft-differentiate '--peft-optimizer=optimizer=sgd lr=0.5 schedule=constant max-grad-norm=0 accumulation=3' | FileCheck %s --check-prefix=SGD

// AdamW, one micro-batch per step: the update is appended to @train_step,
// which takes the step first and returns the loss, the gradient norm and the
// lr. Each trainable param gets exp_avg/exp_avg_sq state params. No weight
// decay for the LayerNorm scale (read by nn.layer_norm), the norm weight
// (named so) and the bias (named so); @w1 is decayed.
peft.param @w1 : tensor<4x8xf32> trainable init "zeros" {peft.key = "base_model.model.fc1.lora_A.weight"}
peft.param @"ln.weight" : tensor<8xf32> trainable init "ones"
peft.param @"model.norm.weight" : tensor<8xf32> trainable init "ones"
peft.param @"fc1.bias" : tensor<8xf32> trainable init "zeros"
peft.param @w2 : tensor<8x3xf32> frozen init "zeros"
func.func @loss(%x: tensor<2x4xf32> {nn.name = "x"}) -> tensor<f32> {
  %w1 = peft.use @w1 : tensor<4x8xf32>
  %s = peft.use @"ln.weight" : tensor<8xf32>
  %g = peft.use @"model.norm.weight" : tensor<8xf32>
  %bias = peft.use @"fc1.bias" : tensor<8xf32>
  %w2 = peft.use @w2 : tensor<8x3xf32>
  %h0 = nn.matmul %x, %w1 : tensor<2x4xf32>, tensor<4x8xf32> -> tensor<2x8xf32>
  %h = nn.add %h0, %bias : tensor<2x8xf32>, tensor<8xf32> -> tensor<2x8xf32>
  %n, %m, %r = nn.layer_norm %h, %s axis 1 epsilon 1.0e-05 : tensor<2x8xf32>, tensor<8xf32> -> tensor<2x8xf32>, tensor<2x1xf32>, tensor<2x1xf32>
  %n2 = nn.mul %n, %g : tensor<2x8xf32>, tensor<8xf32> -> tensor<2x8xf32>
  %y = nn.matmul %n2, %w2 : tensor<2x8xf32>, tensor<8x3xf32> -> tensor<2x3xf32>
  %sq = nn.mul %y, %y : tensor<2x3xf32>, tensor<2x3xf32> -> tensor<2x3xf32>
  %l = nn.reduce_mean %sq axes [0, 1] : tensor<2x3xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// ADAMW:      module attributes {peft.gradient_accumulation_steps = 1 : i64}
// ADAMW:      peft.param @w1 : tensor<4x8xf32> trainable init "zeros" {peft.key = "base_model.model.fc1.lora_A.weight"}
// ADAMW-NEXT: peft.param @w1.exp_avg : tensor<4x8xf32> frozen init "zeros" {peft.state_of = @w1}
// ADAMW-NEXT: peft.param @w1.exp_avg_sq : tensor<4x8xf32> frozen init "zeros" {peft.state_of = @w1}
// ADAMW-NEXT: peft.param @ln.weight : tensor<8xf32> trainable init "ones"
// ADAMW-NEXT: peft.param @ln.weight.exp_avg : tensor<8xf32> frozen init "zeros" {peft.state_of = @ln.weight}
// ADAMW:      peft.param @w2 : tensor<8x3xf32> frozen init "zeros"
// ADAMW-NOT:  peft.state_of = @w2
// ADAMW:  func.func @train_step(%[[STEP:.*]]: tensor<i64> {peft.step}, %{{.*}}: tensor<2x4xf32> {nn.name = "x"}) -> (tensor<f32>, tensor<f32> {peft.metric = "grad_norm"}, tensor<f64> {peft.metric = "lr"})
// ADAMW:      %[[LR:.*]] = peft.lr_schedule %[[STEP]] {base_lr = 1.000000e-02 : f64, kind = "cosine", total_steps = 10 : i64, warmup_steps = 2 : i64} : tensor<i64> -> tensor<f64>
// ADAMW-NEXT: %[[CLIP:.*]]:4, %[[NORM:.*]] = peft.clip_grad_norm %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {max_norm = 5.000000e-01 : f64} : tensor<4x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>
// ADAMW-NEXT: %[[P:.*]] = peft.use @w1
// ADAMW-NEXT: %[[M:.*]] = peft.use @w1.exp_avg
// ADAMW-NEXT: %[[V:.*]] = peft.use @w1.exp_avg_sq
// ADAMW-NEXT: %[[NP:.*]], %[[NM:.*]], %[[NV:.*]] = peft.adamw %[[P]], %[[CLIP]]#0, %[[M]], %[[V]], %[[LR]], %[[STEP]] {beta1 = 9.000000e-01 : f64, beta2 = 0.99899999999999999 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
// ADAMW-NEXT: peft.assign @w1, %[[NP]] : tensor<4x8xf32>
// ADAMW-NEXT: peft.assign @w1.exp_avg, %[[NM]] : tensor<4x8xf32>
// ADAMW-NEXT: peft.assign @w1.exp_avg_sq, %[[NV]] : tensor<4x8xf32>
// ADAMW:      peft.adamw %{{.*}}, %[[CLIP]]#1, {{.*}}weight_decay = 0.000000e+00 : f64
// ADAMW:      peft.assign @ln.weight,
// ADAMW:      peft.adamw %{{.*}}, %[[CLIP]]#2, {{.*}}weight_decay = 0.000000e+00 : f64
// ADAMW:      peft.assign @model.norm.weight,
// ADAMW:      peft.adamw %{{.*}}, %[[CLIP]]#3, {{.*}}weight_decay = 0.000000e+00 : f64
// ADAMW:      peft.assign @fc1.bias,
// ADAMW-NOT:  peft.assign @w2
// ADAMW:      return %{{.*}}, %[[NORM]], %[[LR]] : tensor<f32>, tensor<f32>, tensor<f64>

// SGD-LABEL: func.func @train_step
// SGD-LABEL: func.func @apply_update

// -----

// The spec attribute wins over the options: SGD with momentum, a linear
// schedule, no clipping (the norm is still computed), accumulation over 4
// micro-batches: @train_step stays a micro-batch step and @apply_update
// takes the summed gradients, scaled by 1/4. `no_decay` names bias and a
// regular expression (^head\.).
module attributes {peft.spec = "{\22methods\22:[{\22peft_type\22:\22FULL\22}],\22training\22:{\22inputs\22:{},\22loss\22:{\22type\22:\22cross_entropy\22,\22logits\22:\22logits\22,\22labels\22:\22labels\22,\22shift\22:\22causal\22,\22ignore_index\22:-100},\22optimizer\22:{\22type\22:\22sgd\22,\22lr\22:0.1,\22momentum\22:0.9,\22nesterov\22:false,\22weight_decay\22:0.01,\22no_decay\22:[\22bias\22,\22^head\\\\.\22]},\22schedule\22:{\22type\22:\22linear\22,\22warmup_steps\22:1,\22warmup_ratio\22:null,\22total_steps\22:8},\22max_grad_norm\22:0,\22gradient_accumulation_steps\22:4,\22seed\22:42,\22batch_size\22:null,\22shuffle\22:true,\22pad_token_id\22:null}}"} {
  peft.param @"fc.weight" : tensor<4x3xf32> trainable init "zeros"
  peft.param @"fc.bias" : tensor<3xf32> trainable init "zeros"
  peft.param @"head.weight" : tensor<3x2xf32> trainable init "zeros"
  func.func @loss(%x: tensor<2x4xf32>) -> tensor<f32> {
    %w = peft.use @"fc.weight" : tensor<4x3xf32>
    %b = peft.use @"fc.bias" : tensor<3xf32>
    %h = peft.use @"head.weight" : tensor<3x2xf32>
    %y0 = nn.matmul %x, %w : tensor<2x4xf32>, tensor<4x3xf32> -> tensor<2x3xf32>
    %y = nn.add %y0, %b : tensor<2x3xf32>, tensor<3xf32> -> tensor<2x3xf32>
    %z = nn.matmul %y, %h : tensor<2x3xf32>, tensor<3x2xf32> -> tensor<2x2xf32>
    %l = nn.reduce_sum %z axes [0, 1] : tensor<2x2xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// ADAMW:      peft.param @fc.weight : tensor<4x3xf32> trainable init "zeros"
// ADAMW-NEXT: peft.param @fc.weight.momentum_buffer : tensor<4x3xf32> frozen init "zeros" {peft.state_of = @fc.weight}
// ADAMW-LABEL: func.func @train_step(%{{.*}}: tensor<2x4xf32>) -> (tensor<f32>, tensor<4x3xf32> {peft.grad_of = @fc.weight}, tensor<3xf32> {peft.grad_of = @fc.bias}, tensor<3x2xf32> {peft.grad_of = @head.weight})
// ADAMW-NOT:  peft.assign
// ADAMW:  func.func @apply_update(%[[STEP:.*]]: tensor<i64> {peft.step}, %[[G0:.*]]: tensor<4x3xf32> {peft.grad_of = @fc.weight}, %[[G1:.*]]: tensor<3xf32> {peft.grad_of = @fc.bias}, %[[G2:.*]]: tensor<3x2xf32> {peft.grad_of = @head.weight}) -> (tensor<f32> {peft.metric = "grad_norm"}, tensor<f64> {peft.metric = "lr"})
// ADAMW-NEXT: %[[K:.*]] = nn.constant dense<2.500000e-01> : tensor<f32>
// ADAMW-NEXT: %[[A0:.*]] = nn.mul %[[G0]], %[[K]]
// ADAMW-NEXT: %[[A1:.*]] = nn.mul %[[G1]], %[[K]]
// ADAMW-NEXT: %[[A2:.*]] = nn.mul %[[G2]], %[[K]]
// ADAMW-NEXT: %[[LR:.*]] = peft.lr_schedule %[[STEP]] {base_lr = 1.000000e-01 : f64, kind = "linear", total_steps = 8 : i64, warmup_steps = 1 : i64}
// ADAMW-NOT:  peft.clip_grad_norm
// ADAMW:      nn.add
// ADAMW:      nn.add
// ADAMW-NEXT: %[[NORM:.*]] = nn.sqrt %{{.*}} : tensor<f32>
// ADAMW-NEXT: %[[BUF:.*]] = peft.use @fc.weight.momentum_buffer
// ADAMW-NEXT: %[[P:.*]] = peft.use @fc.weight
// ADAMW-NEXT: %[[NP:.*]], %[[NB:.*]] = peft.sgd %[[P]], %[[A0]], %[[BUF]], %[[LR]], %[[STEP]] {momentum = 9.000000e-01 : f64, weight_decay = 1.000000e-02 : f64}
// ADAMW-NEXT: peft.assign @fc.weight, %[[NP]]
// ADAMW-NEXT: peft.assign @fc.weight.momentum_buffer, %[[NB]]
// ADAMW:      peft.sgd %{{.*}}, %[[A1]], %{{.*}} {momentum = 9.000000e-01 : f64} :
// ADAMW:      peft.sgd %{{.*}}, %[[A2]], %{{.*}} {momentum = 9.000000e-01 : f64} :
// ADAMW:      return %[[NORM]], %[[LR]] : tensor<f32>, tensor<f64>

// SGD-LABEL: func.func @apply_update(%{{.*}}: tensor<i64> {peft.step}
// SGD:       nn.constant dense<2.500000e-01> : tensor<f32>

// -----

// A LoRA layer end to end. Backward: no gradient for the frozen weight and
// no B·A ([6, 4]); the scale 0.1, which f32 cannot hold, is an f64 constant
// cast to f32 (exact when the step runs in f64). SGD without momentum keeps
// no state; 1/3 for the accumulation is an f64 constant too.
peft.param @w : tensor<4x6xf32> frozen init "zeros"
peft.param @a : tensor<2x4xf32> trainable init "kaiming_uniform"
peft.param @b : tensor<6x2xf32> trainable init "zeros"
func.func @loss(%x: tensor<3x4xf32>, %t: tensor<3x6xf32>) -> tensor<f32> {
  %w = peft.use @w : tensor<4x6xf32>
  %a = peft.use @a : tensor<2x4xf32>
  %b = peft.use @b : tensor<6x2xf32>
  %y = peft.lora %x, %w, %a, %b {scale = 0.1 : f64, weight_layout = "in_out"} : tensor<3x4xf32>, tensor<4x6xf32>, tensor<2x4xf32>, tensor<6x2xf32> -> tensor<3x6xf32>
  %l = peft.mse %y, %t : tensor<3x6xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// SGD:       peft.param @w : tensor<4x6xf32> frozen init "zeros"
// SGD-NEXT:  peft.param @a : tensor<2x4xf32> trainable init "kaiming_uniform"
// SGD-NEXT:  peft.param @b : tensor<6x2xf32> trainable init "zeros"
// SGD-NEXT:  func.func @loss
// SGD:  func.func @train_step(%[[X:.*]]: tensor<3x4xf32>, %{{.*}}: tensor<3x6xf32>) -> (tensor<f32>, tensor<2x4xf32> {peft.grad_of = @a}, tensor<6x2xf32> {peft.grad_of = @b})
// SGD:       %[[A:.*]] = peft.use @a
// SGD:       %[[B:.*]] = peft.use @b
// SGD-NOT:   -> tensor<4x6xf32>
// SGD-NOT:   tensor<6x4xf32>
// SGD:       %[[DY:.*]] = nn.mul %{{.*}}, %{{.*}} : tensor<3x6xf32>, tensor<f32> -> tensor<3x6xf32>
// SGD-NEXT:  %[[U:.*]] = nn.matmul %[[DY]], %[[B]] : tensor<3x6xf32>, tensor<6x2xf32> -> tensor<3x2xf32>
// SGD-NEXT:  %[[S64:.*]] = nn.constant dense<1.000000e-01> : tensor<f64>
// SGD-NEXT:  %[[S:.*]] = nn.cast %[[S64]] : tensor<f64> -> tensor<f32>
// SGD-NEXT:  %[[SU:.*]] = nn.mul %[[U]], %[[S]]
// SGD-NEXT:  %[[DA:.*]] = nn.matmul %[[SU]], %[[X]] {transpose_lhs = true} : tensor<3x2xf32>, tensor<3x4xf32> -> tensor<2x4xf32>
// SGD-NEXT:  %[[T:.*]] = nn.matmul %[[X]], %[[A]] {transpose_rhs = true} : tensor<3x4xf32>, tensor<2x4xf32> -> tensor<3x2xf32>
// SGD:       %[[DB:.*]] = nn.matmul %[[DY]], %{{.*}} {transpose_lhs = true} : tensor<3x6xf32>, tensor<3x2xf32> -> tensor<6x2xf32>
// SGD-NOT:   -> tensor<4x6xf32>
// SGD-NOT:   tensor<6x4xf32>
// SGD:       return %{{.*}}, %[[DA]], %[[DB]]
// SGD:  func.func @apply_update(%[[STEP:.*]]: tensor<i64> {peft.step}, %[[GA:.*]]: tensor<2x4xf32> {peft.grad_of = @a}, %[[GB:.*]]: tensor<6x2xf32> {peft.grad_of = @b})
// SGD-NEXT:  %[[K64:.*]] = nn.constant dense<0.33333333333333331> : tensor<f64>
// SGD-NEXT:  %[[K:.*]] = nn.cast %[[K64]] : tensor<f64> -> tensor<f32>
// SGD-NEXT:  %[[MA:.*]] = nn.mul %[[GA]], %[[K]]
// SGD-NEXT:  %[[MB:.*]] = nn.mul %[[GB]], %[[K]]
// SGD-NEXT:  %[[LR:.*]] = peft.lr_schedule %[[STEP]] {base_lr = 5.000000e-01 : f64, kind = "constant"}
// SGD:       %[[PA:.*]] = peft.use @a
// SGD-NEXT:  %[[NA:.*]], %{{.*}} = peft.sgd %[[PA]], %[[MA]], %[[MA]], %[[LR]], %[[STEP]] : tensor<2x4xf32>, tensor<f64>, tensor<i64>
// SGD-NEXT:  peft.assign @a, %[[NA]]
// SGD-NOT:   .momentum_buffer
// SGD:       peft.assign @b,
// SGD-NOT:   peft.assign @w

// ADAMW-LABEL: func.func @train_step(%{{.*}}: tensor<i64> {peft.step}
// ADAMW-NOT:   -> tensor<4x6xf32>
// ADAMW:       peft.adamw
