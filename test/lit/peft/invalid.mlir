// The verifiers and shape inference of the peft training ops reject bad
// operands and attributes with a message naming what was expected.
// RUN: peft-opt %s -split-input-file -verify-diagnostics

func.func @lora_layout(%x: tensor<2x32xf32>, %w: tensor<32x64xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) {
  // expected-error @+2 {{'peft.lora' op weight_layout must be "in_out" or "out_in", got "row_major"}}
  // expected-error @+1 {{'peft.lora' op failed to infer returned types}}
  %y = peft.lora %x, %w, %a, %b {scale = 1.0 : f64, weight_layout = "row_major"}
      : tensor<2x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x4xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @lora_features(%x: tensor<2x32xf32>, %w: tensor<32x64xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) {
  // expected-error @+2 {{'peft.lora' op input has 32 features but weight [32, 64] (out_in) takes 64}}
  // expected-error @+1 {{'peft.lora' op failed to infer returned types}}
  %y = peft.lora %x, %w, %a, %b {scale = 1.0 : f64, weight_layout = "out_in"}
      : tensor<2x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x4xf32> -> tensor<2x32xf32>
  return
}

// -----

func.func @lora_a_shape(%x: tensor<2x32xf32>, %w: tensor<32x64xf32>, %a: tensor<32x4xf32>, %b: tensor<64x4xf32>) {
  // expected-error @+2 {{'peft.lora' op lora_a must be [r, in] = [r, 32] with r >= 1, got [32, 4]}}
  // expected-error @+1 {{'peft.lora' op failed to infer returned types}}
  %y = peft.lora %x, %w, %a, %b {scale = 1.0 : f64, weight_layout = "in_out"}
      : tensor<2x32xf32>, tensor<32x64xf32>, tensor<32x4xf32>, tensor<64x4xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @lora_b_shape(%x: tensor<2x32xf32>, %w: tensor<32x64xf32>, %a: tensor<4x32xf32>, %b: tensor<64x8xf32>) {
  // expected-error @+2 {{'peft.lora' op lora_b must be [out, r] = [64, 4], got [64, 8]}}
  // expected-error @+1 {{'peft.lora' op failed to infer returned types}}
  %y = peft.lora %x, %w, %a, %b {scale = 1.0 : f64, weight_layout = "in_out"}
      : tensor<2x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x8xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @lora_element_type(%x: tensor<2x32xf32>, %w: tensor<32x64xf32>, %a: tensor<4x32xf16>, %b: tensor<64x4xf32>) {
  // expected-error @+2 {{'peft.lora' op lora_a has element type f16 but input has f32}}
  // expected-error @+1 {{'peft.lora' op failed to infer returned types}}
  %y = peft.lora %x, %w, %a, %b {scale = 1.0 : f64, weight_layout = "in_out"}
      : tensor<2x32xf32>, tensor<32x64xf32>, tensor<4x32xf16>, tensor<64x4xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @lora_result(%x: tensor<2x32xf32>, %w: tensor<32x64xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) {
  // expected-error @+2 {{'peft.lora' op inferred type(s) 'tensor<2x64xf32>' are incompatible with return type(s) of operation 'tensor<2x32xf32>'}}
  // expected-error @+1 {{'peft.lora' op failed to infer returned types}}
  %y = peft.lora %x, %w, %a, %b {scale = 1.0 : f64, weight_layout = "in_out"}
      : tensor<2x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x4xf32> -> tensor<2x32xf32>
  return
}

// -----

func.func @lora_missing_scale(%x: tensor<2x32xf32>, %w: tensor<32x64xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) {
  // expected-error @+1 {{'peft.lora' op requires attribute 'scale'}}
  %y = peft.lora %x, %w, %a, %b {weight_layout = "in_out"}
      : tensor<2x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x4xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @lora_adapter_input(%x: tensor<2x32xf32>, %d: tensor<3x32xf32>, %w: tensor<32x64xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) {
  // expected-error @+1 {{'peft.lora' op failed to verify that adapter_input has the input's type}}
  %y = "peft.lora"(%x, %w, %a, %b, %d) {scale = 1.0 : f64, weight_layout = "in_out"}
      : (tensor<2x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<3x32xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @dora_magnitude(%x: tensor<2x32xf32>, %w: tensor<64x32xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>, %m: tensor<32xf32>) {
  // expected-error @+2 {{'peft.dora' op magnitude must be [out] = [64], got [32]}}
  // expected-error @+1 {{'peft.dora' op failed to infer returned types}}
  %y = peft.dora %x, %w, %a, %b, %m {scale = 1.0 : f64, weight_layout = "out_in"}
      : tensor<2x32xf32>, tensor<64x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<32xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @ia3_factors(%h: tensor<2x8x64xf32>, %l: tensor<8xf32>) {
  // expected-error @+2 {{'peft.ia3' op factors must be [features] = [64], got [8]}}
  // expected-error @+1 {{'peft.ia3' op failed to infer returned types}}
  %y = peft.ia3 %h, %l : tensor<2x8x64xf32>, tensor<8xf32> -> tensor<2x8x64xf32>
  return
}

// -----

func.func @cross_entropy_labels(%logits: tensor<2x8x100xf32>, %labels: tensor<2x7xi64>) {
  // expected-error @+2 {{'peft.cross_entropy' op labels [2, 7] must have the shape of logits [2, 8, 100] without its last axis}}
  // expected-error @+1 {{'peft.cross_entropy' op failed to infer returned types}}
  %l = peft.cross_entropy %logits, %labels : tensor<2x8x100xf32>, tensor<2x7xi64> -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_shift(%logits: tensor<2x8x100xf32>, %labels: tensor<2x8xi64>) {
  // expected-error @+2 {{'peft.cross_entropy' op shift must be "none" or "causal", got "left"}}
  // expected-error @+1 {{'peft.cross_entropy' op failed to infer returned types}}
  %l = peft.cross_entropy %logits, %labels {shift = "left"} : tensor<2x8x100xf32>, tensor<2x8xi64> -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_causal_scalar(%logits: tensor<100xf32>, %labels: tensor<i64>) {
  // expected-error @+2 {{'peft.cross_entropy' op a causal shift needs labels with a sequence axis (rank >= 1)}}
  // expected-error @+1 {{'peft.cross_entropy' op failed to infer returned types}}
  %l = peft.cross_entropy %logits, %labels {shift = "causal"} : tensor<100xf32>, tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_float_labels(%logits: tensor<2x100xf32>, %labels: tensor<2xf32>) {
  // expected-error @+1 {{'peft.cross_entropy' op operand #1 must be statically shaped tensor of signless integer values}}
  %l = "peft.cross_entropy"(%logits, %labels) : (tensor<2x100xf32>, tensor<2xf32>) -> tensor<f32>
  return
}

// -----

func.func @mse_types(%p: tensor<4x3xf32>, %t: tensor<4x2xf32>) {
  // expected-error @+1 {{'peft.mse' op failed to verify that all of {prediction, target} have same type}}
  %l = "peft.mse"(%p, %t) : (tensor<4x3xf32>, tensor<4x2xf32>) -> tensor<f32>
  return
}

// -----

func.func @adamw_beta(%p: tensor<4xf32>, %lr: tensor<f32>, %step: tensor<i64>) {
  // expected-error @+1 {{'peft.adamw' op beta1 must be in [0, 1), got 1}}
  %0:3 = peft.adamw %p, %p, %p, %p, %lr, %step
      {beta1 = 1.0 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64}
      : tensor<4xf32>, tensor<f32>, tensor<i64>
  return
}

// -----

func.func @adamw_eps(%p: tensor<4xf32>, %lr: tensor<f32>, %step: tensor<i64>) {
  // expected-error @+1 {{'peft.adamw' op eps must be finite and >= 0, got -1e-08}}
  %0:3 = peft.adamw %p, %p, %p, %p, %lr, %step
      {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = -1.0e-8 : f64, weight_decay = 0.0 : f64}
      : tensor<4xf32>, tensor<f32>, tensor<i64>
  return
}

// -----

func.func @adamw_state_type(%p: tensor<4xf32>, %v: tensor<3xf32>, %lr: tensor<f32>, %step: tensor<i64>) {
  // expected-error @+1 {{'peft.adamw' op failed to verify that all of {param, grad, exp_avg, exp_avg_sq} have same type}}
  %0:3 = "peft.adamw"(%p, %p, %p, %v, %lr, %step)
      {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64}
      : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<3xf32>, tensor<f32>, tensor<i64>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @adamw_step_type(%p: tensor<4xf32>, %lr: tensor<f32>, %step: tensor<f32>) {
  // expected-error @+1 {{'peft.adamw' op operand #5 must be 0D tensor of 64-bit signless integer values}}
  %0:3 = peft.adamw %p, %p, %p, %p, %lr, %step
      {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64}
      : tensor<4xf32>, tensor<f32>, tensor<f32>
  return
}

// -----

func.func @sgd_nesterov(%p: tensor<4xf32>, %lr: tensor<f32>, %step: tensor<i64>) {
  // expected-error @+1 {{'peft.sgd' op nesterov needs a positive momentum and zero dampening (as torch.optim.SGD)}}
  %0:2 = peft.sgd %p, %p, %p, %lr, %step {momentum = 0.9 : f64, dampening = 0.1 : f64, nesterov = true}
      : tensor<4xf32>, tensor<f32>, tensor<i64>
  return
}

// -----

func.func @clip_max_norm(%g: tensor<4xf32>) {
  // expected-error @+1 {{'peft.clip_grad_norm' op max_norm must be finite and > 0, got 0}}
  %0:2 = peft.clip_grad_norm %g {max_norm = 0.0 : f64} : tensor<4xf32>
  return
}

// -----

func.func @clip_element_types(%g: tensor<4xf32>, %h: tensor<4xf64>) {
  // expected-error @+1 {{'peft.clip_grad_norm' op gradient #1 has element type f64 but gradient #0 has f32}}
  %0:3 = peft.clip_grad_norm %g, %h {max_norm = 1.0 : f64} : tensor<4xf32>, tensor<4xf64>
  return
}

// -----

func.func @clip_no_grads() {
  // expected-error @+2 {{'peft.clip_grad_norm' op needs at least one gradient}}
  // expected-error @+1 {{'peft.clip_grad_norm' op failed to infer returned types}}
  %0 = "peft.clip_grad_norm"() {max_norm = 1.0 : f64} : () -> tensor<f32>
  return
}

// -----

func.func @schedule_kind(%step: tensor<i64>) {
  // expected-error @+1 {{'peft.lr_schedule' op kind must be "constant", "linear" or "cosine", got "step"}}
  %lr = peft.lr_schedule %step {kind = "step", base_lr = 1.0e-3 : f64} : tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @schedule_total(%step: tensor<i64>) {
  // expected-error @+1 {{'peft.lr_schedule' op a linear schedule needs total_steps >= 1, got 0}}
  %lr = peft.lr_schedule %step {kind = "linear", base_lr = 1.0e-3 : f64, warmup_steps = 2 : i64} : tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @schedule_warmup(%step: tensor<i64>) {
  // expected-error @+1 {{'peft.lr_schedule' op warmup_steps must be >= 0, got -1}}
  %lr = peft.lr_schedule %step {kind = "constant", base_lr = 1.0e-3 : f64, warmup_steps = -1 : i64} : tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @schedule_result(%step: tensor<i64>) {
  // expected-error @+1 {{'peft.lr_schedule' op result #0 must be 0D tensor of floating-point values}}
  %lr = peft.lr_schedule %step {kind = "constant", base_lr = 1.0e-3 : f64} : tensor<i64> -> tensor<1xf32>
  return
}

// -----

peft.param @w : tensor<4x8xf32> trainable init "zeros"
func.func @assign_type(%v: tensor<8x4xf32>) {
  // expected-error @+1 {{'peft.assign' op value of type 'tensor<8x4xf32>' cannot be assigned to param @w of type 'tensor<4x8xf32>'}}
  peft.assign @w, %v : tensor<8x4xf32>
  return
}

// -----

func.func @assign_unknown(%v: tensor<8x4xf32>) {
  // expected-error @+1 {{'peft.assign' op 'missing' is not a peft.param}}
  peft.assign @missing, %v : tensor<8x4xf32>
  return
}
