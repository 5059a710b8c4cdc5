// RUN: peft-opt %s --split-input-file --verify-diagnostics --peft-step-stats -o /dev/null | FileCheck %s

// A hand-written step that (wrongly) forms the gradient of the frozen @w1:
// dw1 = xᵀ·dh reads x, the activation of x·w1, and has w1's shape. The
// statistics name it, so a pipeline bug that trains a frozen weight shows.
// Forward: 2 uses, 2 matmuls, reduce_sum = 5 ops; x·w1 2·(2·8)·4 = 128,
// h·w2 2·(2·3)·8 = 96. Backward: seed, broadcast, dw2 = hᵀ·dy
// 2·(8·3)·2 = 96, dh = dy·w2ᵀ 2·(2·8)·3 = 96, dw1 2·(4·8)·2 = 128: 5 ops,
// 3 GEMMs, 320 FLOPs. Kept: h ([2,8] f32, 64 bytes).
peft.param @w1 : tensor<4x8xf32> frozen init "zeros"
peft.param @w2 : tensor<8x3xf32> trainable init "zeros"
func.func @train_step(%x: tensor<2x4xf32>) -> (tensor<f32>, tensor<8x3xf32> {peft.grad_of = @w2}) {
  %w1 = peft.use @w1 : tensor<4x8xf32>
  %w2 = peft.use @w2 : tensor<8x3xf32>
  %h = nn.matmul %x, %w1 : tensor<2x4xf32>, tensor<4x8xf32> -> tensor<2x8xf32>
  %y = nn.matmul %h, %w2 : tensor<2x8xf32>, tensor<8x3xf32> -> tensor<2x3xf32>
  %l = nn.reduce_sum %y axes [0, 1] : tensor<2x3xf32> -> tensor<f32>
  %one = nn.constant dense<1.0> : tensor<f32>
  %dy = nn.broadcast_to %one : tensor<f32> -> tensor<2x3xf32>
  %dw2 = nn.matmul %h, %dy {transpose_lhs = true} : tensor<2x8xf32>, tensor<2x3xf32> -> tensor<8x3xf32>
  %dh = nn.matmul %dy, %w2 {transpose_rhs = true} : tensor<2x3xf32>, tensor<8x3xf32> -> tensor<2x8xf32>
  %dw1 = nn.matmul %x, %dh {transpose_lhs = true} : tensor<2x4xf32>, tensor<2x8xf32> -> tensor<4x8xf32>
  return %l, %dw2 : tensor<f32>, tensor<8x3xf32>
}

// CHECK:      forward: 5 ops, 2 GEMMs, 224 FLOPs
// CHECK-NEXT: backward: 5 ops, 3 GEMMs, 320 FLOPs
// CHECK-NEXT: update: 0 ops
// CHECK-NEXT: weight-gradient: 1 GEMMs, 96 FLOPs
// CHECK-NEXT: weight-gradient @"w2": 1 GEMMs, 96 FLOPs
// CHECK-NEXT: frozen params with a weight gradient: 1 @"w1"
// CHECK-NEXT: kept activations: 1 values, 64 bytes

// -----

// expected-error @+1 {{peft-step-stats: the module has no function @train_step}}
module {
  func.func @forward(%x: tensor<2xf32>) -> tensor<2xf32> {
    return %x : tensor<2xf32>
  }
}

// -----

// expected-error @+1 {{returns no gradient and updates no param}}
func.func @train_step(%x: tensor<f32>) -> tensor<f32> {
  %y = nn.neg %x : tensor<f32>
  return %y : tensor<f32>
}
