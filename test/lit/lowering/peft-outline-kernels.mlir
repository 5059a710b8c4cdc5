// RUN: peft-opt %s --split-input-file --peft-outline-kernels | FileCheck %s

// A same-shaped elementwise chain (with a broadcast operand) is one kernel
// with the values used outside it as results; the softmax is its own
// kernel; GEMMs, reshapes, uses and small constants stay.
// CHECK-LABEL: func.func @step
// CHECK: %[[W:.*]] = peft.use @w
// CHECK: %[[C:.*]] = nn.constant dense<5.000000e-01> : tensor<f32>
// CHECK: %[[G:.*]] = kern.gemm %arg0, %[[W]]
// CHECK: %[[E:.*]]:2 = kern.launch @k0(%[[G]], %arg1, %[[C]]) : (tensor<4x8xf32>, tensor<8xf32>, tensor<f32>) -> (tensor<4x8xf32>, tensor<4x8xf32>)
// CHECK: %[[R:.*]] = nn.reshape %[[E]]#0
// CHECK: %[[S:.*]] = kern.launch @k1(%[[E]]#1) : (tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK: return %[[R]], %[[S]]
// CHECK: func.func private @k0(%arg0: tensor<4x8xf32>, %arg1: tensor<8xf32>, %arg2: tensor<f32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) attributes {kern.kernel}
// CHECK-NEXT: nn.add %arg0, %arg1
// CHECK-NEXT: nn.mul
// CHECK-NEXT: nn.tanh
// CHECK-NEXT: return
// CHECK: func.func private @k1(%arg0: tensor<4x8xf32>) -> tensor<4x8xf32> attributes {kern.kernel}
// CHECK-NEXT: nn.softmax %arg0 axis 1
func.func @step(%x: tensor<4x16xf32>, %b: tensor<8xf32>) -> (tensor<32xf32>, tensor<4x8xf32>) {
  %w = peft.use @w : tensor<16x8xf32>
  %c = nn.constant dense<0.5> : tensor<f32>
  %y = kern.gemm %x, %w : (tensor<4x16xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  %z = nn.add %y, %b : tensor<4x8xf32>, tensor<8xf32> -> tensor<4x8xf32>
  %h = nn.mul %z, %c : tensor<4x8xf32>, tensor<f32> -> tensor<4x8xf32>
  %t = nn.tanh %h : tensor<4x8xf32>
  %r = nn.reshape %h : tensor<4x8xf32> -> tensor<32xf32>
  %s = nn.softmax %t axis 1 : tensor<4x8xf32>
  return %r, %s : tensor<32xf32>, tensor<4x8xf32>
}
peft.param @w : tensor<16x8xf32> frozen init "zeros"

// -----

// %a leaves the chain through the reduction and its result comes back:
// fusing across it would make the kernel depend on itself, so the chain is
// split into two kernels around the reduction.
// CHECK-LABEL: func.func @no_cycle
// CHECK: %[[A:.*]] = kern.launch @k0(%arg0)
// CHECK: %[[R:.*]] = kern.launch @k1(%[[A]])
// CHECK: %[[B:.*]] = kern.launch @k2(%[[A]], %[[R]])
// CHECK: return %[[B]]
func.func @no_cycle(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %a = nn.exp %x : tensor<4x8xf32>
  %r = nn.reduce_sum %a axes [1] keepdims : tensor<4x8xf32> -> tensor<4x1xf32>
  %b = nn.div %a, %r : tensor<4x8xf32>, tensor<4x1xf32> -> tensor<4x8xf32>
  return %b : tensor<4x8xf32>
}

// -----

// Different result shapes are different kernels; the optimizer update
// fuses with the gradient's scaling, and its unused result is not one of
// the kernel's; assigns end the function.
// CHECK-LABEL: func.func @update
// CHECK: %[[U:.*]]:2 = kern.launch @k0(%arg1, %{{.*}}, %{{.*}}, %{{.*}}, %arg2, %arg0) : (tensor<4xf32>, tensor<f32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<i64>) -> (tensor<4xf32>, tensor<4xf32>)
// CHECK: %[[L:.*]] = kern.launch @k1(%arg2)
// CHECK: peft.assign @p, %[[U]]#0
// CHECK: peft.assign @m, %[[U]]#1
// CHECK-NEXT: return %[[L]]
// CHECK: func.func private @k0
// CHECK-NEXT: nn.mul
// CHECK-NEXT: peft.adamw
func.func @update(%step: tensor<i64>, %g: tensor<4xf32>, %lr: tensor<f32>) -> tensor<f32> {
  %p = peft.use @p : tensor<4xf32>
  %m = peft.use @m : tensor<4xf32>
  %half = nn.constant dense<0.5> : tensor<f32>
  %gs = nn.mul %g, %half : tensor<4xf32>, tensor<f32> -> tensor<4xf32>
  %np, %nm, %nv = peft.adamw %p, %gs, %m, %m, %lr, %step {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : tensor<4xf32>, tensor<f32>, tensor<i64>
  peft.assign @p, %np : tensor<4xf32>
  %lr2 = nn.exp %lr : tensor<f32>
  peft.assign @m, %nm : tensor<4xf32>
  return %lr2 : tensor<f32>
}
peft.param @p : tensor<4xf32> trainable init "zeros"
peft.param @m : tensor<4xf32> frozen init "zeros"
