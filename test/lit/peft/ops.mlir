// Every peft training op parses, verifies and prints back to the same text,
// and the generic form round-trips through the custom one.
// RUN: peft-opt %s | FileCheck %s
// RUN: peft-opt %s | peft-opt | FileCheck %s
// RUN: peft-opt %s --mlir-print-op-generic | peft-opt | FileCheck %s

// CHECK: peft.param @lora_a : tensor<4x32xf32> trainable init "kaiming_uniform"
peft.param @lora_a : tensor<4x32xf32> trainable init "kaiming_uniform"

// CHECK-LABEL: func.func @adapters
func.func @adapters(%x: tensor<2x8x32xf32>, %dropped: tensor<2x8x32xf32>,
                    %w: tensor<32x64xf32>, %wt: tensor<64x32xf32>,
                    %b: tensor<64x4xf32>, %m: tensor<64xf32>,
                    %l: tensor<64xf32>)
    -> (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>,
        tensor<2x8x64xf32>, tensor<2x8x64xf32>) {
  // CHECK: %[[A:.*]] = peft.use @lora_a : tensor<4x32xf32>
  %a = peft.use @lora_a : tensor<4x32xf32>
  // CHECK: %[[Y0:.*]] = peft.lora %{{.*}}, %{{.*}}, %[[A]], %{{.*}} {scale = 2.000000e+00 : f64, weight_layout = "in_out"} : tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x4xf32> -> tensor<2x8x64xf32>
  %y0 = peft.lora %x, %w, %a, %b {scale = 2.0 : f64, weight_layout = "in_out"}
      : tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x4xf32> -> tensor<2x8x64xf32>
  // CHECK: peft.lora %{{.*}}, %{{.*}}, %[[A]], %{{.*}} adapter_input %{{.*}} {scale = 5.000000e-01 : f64, weight_layout = "out_in"} : tensor<2x8x32xf32>, tensor<64x32xf32>, tensor<4x32xf32>, tensor<64x4xf32> -> tensor<2x8x64xf32>
  %y1 = peft.lora %x, %wt, %a, %b adapter_input %dropped {scale = 0.5 : f64, weight_layout = "out_in"}
      : tensor<2x8x32xf32>, tensor<64x32xf32>, tensor<4x32xf32>, tensor<64x4xf32> -> tensor<2x8x64xf32>
  // CHECK: peft.dora %{{.*}}, %{{.*}}, %[[A]], %{{.*}}, %{{.*}} {scale = 2.000000e+00 : f64, weight_layout = "in_out"} : tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  %y2 = peft.dora %x, %w, %a, %b, %m {scale = 2.0 : f64, weight_layout = "in_out"}
      : tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  // CHECK: peft.dora %{{.*}}, %{{.*}}, %[[A]], %{{.*}}, %{{.*}} adapter_input %{{.*}} {scale = 2.000000e+00 : f64, weight_layout = "out_in"}
  %y3 = peft.dora %x, %wt, %a, %b, %m adapter_input %dropped {scale = 2.0 : f64, weight_layout = "out_in"}
      : tensor<2x8x32xf32>, tensor<64x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  // CHECK: peft.ia3 %{{.*}}, %{{.*}} : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  %y4 = peft.ia3 %y0, %l : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  return %y0, %y1, %y2, %y3, %y4
      : tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>
}

// CHECK-LABEL: func.func @losses
func.func @losses(%logits: tensor<2x8x100xf32>, %labels: tensor<2x8xi64>,
                  %pred: tensor<4x3xf64>, %target: tensor<4x3xf64>)
    -> (tensor<f32>, tensor<f32>, tensor<f64>) {
  // CHECK: peft.cross_entropy %{{.*}}, %{{.*}} : tensor<2x8x100xf32>, tensor<2x8xi64> -> tensor<f32>
  %0 = peft.cross_entropy %logits, %labels : tensor<2x8x100xf32>, tensor<2x8xi64> -> tensor<f32>
  // CHECK: peft.cross_entropy %{{.*}}, %{{.*}} {ignore_index = 0 : i64, shift = "causal"} : tensor<2x8x100xf32>, tensor<2x8xi64> -> tensor<f32>
  %1 = peft.cross_entropy %logits, %labels {ignore_index = 0 : i64, shift = "causal"}
      : tensor<2x8x100xf32>, tensor<2x8xi64> -> tensor<f32>
  // CHECK: peft.mse %{{.*}}, %{{.*}} : tensor<4x3xf64> -> tensor<f64>
  %2 = peft.mse %pred, %target : tensor<4x3xf64> -> tensor<f64>
  return %0, %1, %2 : tensor<f32>, tensor<f32>, tensor<f64>
}

// CHECK: peft.param @step : tensor<i64> frozen value dense<1> : tensor<i64>
peft.param @step : tensor<i64> frozen value dense<1> : tensor<i64>
peft.param @exp_avg : tensor<4x32xf32> frozen init "zeros"

// CHECK-LABEL: func.func @optimizer
func.func @optimizer(%ga: tensor<4x32xf32>, %gb: tensor<64x4xf32>,
                     %v: tensor<4x32xf32>, %p: tensor<64x4xf32>)
    -> (tensor<f32>, tensor<4x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>,
        tensor<64x4xf32>) {
  %step = peft.use @step : tensor<i64>
  // CHECK: %[[LR:.*]] = peft.lr_schedule %{{.*}} {base_lr = 1.000000e-03 : f64, kind = "cosine", total_steps = 100 : i64, warmup_steps = 10 : i64} : tensor<i64> -> tensor<f32>
  %lr = peft.lr_schedule %step {kind = "cosine", base_lr = 1.0e-3 : f64, warmup_steps = 10 : i64, total_steps = 100 : i64}
      : tensor<i64> -> tensor<f32>
  // CHECK: %[[CLIP:.*]]:2, %[[NORM:.*]] = peft.clip_grad_norm %{{.*}}, %{{.*}} {max_norm = 1.000000e+00 : f64} : tensor<4x32xf32>, tensor<64x4xf32>
  %ca, %cb, %norm = peft.clip_grad_norm %ga, %gb {max_norm = 1.0 : f64} : tensor<4x32xf32>, tensor<64x4xf32>
  %a = peft.use @lora_a : tensor<4x32xf32>
  %m = peft.use @exp_avg : tensor<4x32xf32>
  // CHECK: %[[P:.*]], %[[M:.*]], %[[V:.*]] = peft.adamw %{{.*}}, %[[CLIP]]#0, %{{.*}}, %{{.*}}, %[[LR]], %{{.*}} {beta1 = 9.000000e-01 : f64, beta2 = 0.99899999999999999 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-02 : f64} : tensor<4x32xf32>, tensor<f32>, tensor<i64>
  %a2, %m2, %v2 = peft.adamw %a, %ca, %m, %v, %lr, %step
      {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.01 : f64}
      : tensor<4x32xf32>, tensor<f32>, tensor<i64>
  // CHECK: peft.assign @lora_a, %[[P]] : tensor<4x32xf32>
  peft.assign @lora_a, %a2 : tensor<4x32xf32>
  // CHECK: peft.assign @exp_avg, %[[M]] : tensor<4x32xf32>
  peft.assign @exp_avg, %m2 : tensor<4x32xf32>
  // CHECK: %[[P2:.*]], %[[BUF:.*]] = peft.sgd %{{.*}}, %[[CLIP]]#1, %{{.*}}, %[[LR]], %{{.*}} {momentum = 9.000000e-01 : f64, nesterov = true} : tensor<64x4xf32>, tensor<f32>, tensor<i64>
  %p2, %buf = peft.sgd %p, %cb, %p, %lr, %step {momentum = 0.9 : f64, nesterov = true}
      : tensor<64x4xf32>, tensor<f32>, tensor<i64>
  // CHECK: return %[[NORM]], %[[P]], %[[V]], %[[P2]], %[[BUF]]
  return %norm, %a2, %v2, %p2, %buf
      : tensor<f32>, tensor<4x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<64x4xf32>
}
