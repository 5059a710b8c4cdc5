// RUN: peft-opt %s --split-input-file --peft-differentiate --peft-step-stats -o /dev/null | FileCheck %s
// RUN: peft-opt %s --split-input-file --peft-differentiate "--peft-optimizer=schedule=constant" --peft-step-stats -o /dev/null | FileCheck %s --check-prefix=UPDATE

// Two-layer MLP, x[2,4] -> h = x·w1 [2,8] -> a = relu(h) -> y = a·w2 [2,3]
// -> mean(y·y). Layer 0 is the first matmul, layer 1 the relu and the second
// matmul (their locations carry TorchScript node scopes).
//
// Forward: 7 ops (2 peft.use, 2 matmul, relu, mul, reduce_mean), 2 GEMMs:
// x·w1 = 2·(2·8)·4 = 128 FLOPs, a·w2 = 2·(2·3)·8 = 96 FLOPs: 224.
//
// w1 trainable, w2 frozen. Backward ops, rule by rule:
//   seed 1; reduce_mean: the 1/6 scale (f64 constant, cast, mul) 3 +
//   reshape to [1,1] + broadcast to [2,3] = 5; mul(y, y): two products and
//   their sum = 3; a·w2: only da = dy·w2ᵀ = 1 (no dW2: w2 is frozen);
//   relu: constant 0, greater, constant 0, where = 4; x·w1: only
//   dW1 = xᵀ·dh = 1 (x is an input). Total 1+5+3+1+4+1 = 15.
// Backward GEMMs: da [2,3]·[3,8] = 2·16·3 = 96, dW1 [4,2]·[2,8] = 2·32·2
// = 128: 2 GEMMs, 224 FLOPs; the weight gradient is dW1 alone.
// Kept: h (relu mask, [2,8] f32 = 64 bytes, layer 0) and y (mul's
// operands, [2,3] f32 = 24 bytes, layer 1); x is an input, w2 a param.
peft.param @w1 : tensor<4x8xf32> trainable init "zeros"
peft.param @w2 : tensor<8x3xf32> frozen init "zeros"
func.func @loss(%x: tensor<2x4xf32>) -> tensor<f32> {
  %w1 = peft.use @w1 : tensor<4x8xf32>
  %w2 = peft.use @w2 : tensor<8x3xf32>
  %h = nn.matmul %x, %w1 : tensor<2x4xf32>, tensor<4x8xf32> -> tensor<2x8xf32> loc("/model/layers.0/fc/MatMul")
  %a = nn.relu %h : tensor<2x8xf32> loc("/model/layers.1/act/Relu")
  %y = nn.matmul %a, %w2 : tensor<2x8xf32>, tensor<8x3xf32> -> tensor<2x3xf32> loc("/model/layers.1/fc/MatMul")
  %sq = nn.mul %y, %y : tensor<2x3xf32>, tensor<2x3xf32> -> tensor<2x3xf32>
  %l = nn.reduce_mean %sq axes [0, 1] : tensor<2x3xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// CHECK-LABEL: step statistics of @train_step
// CHECK-NEXT:  forward: 7 ops, 2 GEMMs, 224 FLOPs
// CHECK-NEXT:  backward: 15 ops, 2 GEMMs, 224 FLOPs
// CHECK-NEXT:  update: 0 ops
// CHECK-NEXT:  weight-gradient: 1 GEMMs, 128 FLOPs
// CHECK-NEXT:  weight-gradient @"w1": 1 GEMMs, 128 FLOPs
// CHECK-NEXT:  frozen params with a weight gradient: 0
// CHECK-NEXT:  kept activations: 2 values, 88 bytes
// Outside the layers: the uses, mul and mean; seed, mean and mul backward.
// CHECK-NEXT:  layer -: forward 4 ops, 0 GEMMs, 0 FLOPs; backward 9 ops, 0 GEMMs, 0 FLOPs; kept 0 values, 0 bytes
// CHECK-NEXT:  layer 0: forward 1 ops, 1 GEMMs, 128 FLOPs; backward 1 ops, 1 GEMMs, 128 FLOPs; kept 1 values, 64 bytes
// CHECK-NEXT:  layer 1: forward 2 ops, 1 GEMMs, 96 FLOPs; backward 5 ops, 1 GEMMs, 96 FLOPs; kept 1 values, 24 bytes

// After peft-optimizer (AdamW, clipping at 1.0) the backward is the same;
// the update is lr_schedule, clip_grad_norm, three uses (w1, exp_avg,
// exp_avg_sq), adamw and three assigns: 9 ops.
// UPDATE-LABEL: step statistics of @train_step
// UPDATE-NEXT:  forward: 7 ops, 2 GEMMs, 224 FLOPs
// UPDATE-NEXT:  backward: 15 ops, 2 GEMMs, 224 FLOPs
// UPDATE-NEXT:  update: 9 ops
// UPDATE-NEXT:  weight-gradient: 1 GEMMs, 128 FLOPs
// UPDATE-NEXT:  weight-gradient @"w1": 1 GEMMs, 128 FLOPs
// UPDATE-NEXT:  frozen params with a weight gradient: 0
// UPDATE-NEXT:  kept activations: 2 values, 88 bytes

// -----

// Only w2 (layer 1) trains: layer 0 runs forward only, with no backward op
// and no kept value. Backward: seed 1 + mean 5 + mul 3 + dW2 = aᵀ·dy 1 = 10
// ops; dW2 [8,2]·[2,3] = 2·24·2 = 96 FLOPs. Kept: a ([2,8], 64 bytes) and y
// (24 bytes), both layer 1.
peft.param @w1 : tensor<4x8xf32> frozen init "zeros"
peft.param @w2 : tensor<8x3xf32> trainable init "zeros"
func.func @loss(%x: tensor<2x4xf32>) -> tensor<f32> {
  %w1 = peft.use @w1 : tensor<4x8xf32>
  %w2 = peft.use @w2 : tensor<8x3xf32>
  %h = nn.matmul %x, %w1 : tensor<2x4xf32>, tensor<4x8xf32> -> tensor<2x8xf32> loc("/model/layers.0/fc/MatMul")
  %a = nn.relu %h : tensor<2x8xf32> loc("/model/layers.1/act/Relu")
  %y = nn.matmul %a, %w2 : tensor<2x8xf32>, tensor<8x3xf32> -> tensor<2x3xf32> loc("/model/layers.1/fc/MatMul")
  %sq = nn.mul %y, %y : tensor<2x3xf32>, tensor<2x3xf32> -> tensor<2x3xf32>
  %l = nn.reduce_mean %sq axes [0, 1] : tensor<2x3xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// CHECK-LABEL: step statistics of @train_step
// CHECK-NEXT:  forward: 7 ops, 2 GEMMs, 224 FLOPs
// CHECK-NEXT:  backward: 10 ops, 1 GEMMs, 96 FLOPs
// CHECK-NEXT:  update: 0 ops
// CHECK-NEXT:  weight-gradient: 1 GEMMs, 96 FLOPs
// CHECK-NEXT:  weight-gradient @"w2": 1 GEMMs, 96 FLOPs
// CHECK-NEXT:  frozen params with a weight gradient: 0
// CHECK-NEXT:  kept activations: 2 values, 88 bytes
// CHECK-NEXT:  layer -: forward 4 ops, 0 GEMMs, 0 FLOPs; backward 9 ops, 0 GEMMs, 0 FLOPs; kept 0 values, 0 bytes
// CHECK-NEXT:  layer 0: forward 1 ops, 1 GEMMs, 128 FLOPs; backward 0 ops, 0 GEMMs, 0 FLOPs; kept 0 values, 0 bytes
// CHECK-NEXT:  layer 1: forward 2 ops, 1 GEMMs, 96 FLOPs; backward 1 ops, 1 GEMMs, 96 FLOPs; kept 2 values, 88 bytes

// UPDATE-LABEL: step statistics of @train_step
// UPDATE:       backward: 10 ops, 1 GEMMs, 96 FLOPs
// UPDATE-NEXT:  update: 9 ops
