// RUN: peft-opt %s --split-input-file --peft-differentiate | FileCheck %s

// Two-layer MLP, lower weight trainable, upper weight frozen: the input
// gradient flows through @w2 (dy x w2^T) but no matmul forms w2's gradient.
peft.param @w1 : tensor<4x8xf32> trainable init "zeros"
peft.param @w2 : tensor<8x3xf32> frozen init "zeros"
func.func @loss(%x: tensor<2x4xf32>) -> tensor<f32> {
  %w1 = peft.use @w1 : tensor<4x8xf32>
  %w2 = peft.use @w2 : tensor<8x3xf32>
  %h = nn.matmul %x, %w1 : tensor<2x4xf32>, tensor<4x8xf32> -> tensor<2x8xf32>
  %a = nn.relu %h : tensor<2x8xf32>
  %y = nn.matmul %a, %w2 : tensor<2x8xf32>, tensor<8x3xf32> -> tensor<2x3xf32>
  %sq = nn.mul %y, %y : tensor<2x3xf32>, tensor<2x3xf32> -> tensor<2x3xf32>
  %l = nn.reduce_mean %sq axes [0, 1] : tensor<2x3xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// CHECK-LABEL: func.func @loss
// CHECK-LABEL: func.func @train_step(%{{.*}}: tensor<2x4xf32>) -> (tensor<f32>, tensor<4x8xf32> {peft.grad_of = @w1})
// CHECK:     %[[W2:.*]] = peft.use @w2
// CHECK:     %[[H:.*]] = nn.matmul %{{.*}}, %{{.*}} : tensor<2x4xf32>, tensor<4x8xf32>
// CHECK:     nn.matmul %{{.*}}, %[[W2]] : tensor<2x8xf32>, tensor<8x3xf32>
// CHECK:     nn.reduce_mean
// The input gradient flows through the frozen @w2 ...
// CHECK:     nn.matmul %{{.*}}, %[[W2]] {transpose_rhs = true} : tensor<2x3xf32>, tensor<8x3xf32> -> tensor<2x8xf32>
// ... but nothing forms @w2's gradient.
// CHECK-NOT: -> tensor<8x3xf32>
// CHECK:     %[[MASK:.*]] = nn.greater %[[H]]
// CHECK:     %[[DH:.*]] = nn.where %[[MASK]]
// CHECK-NOT: -> tensor<8x3xf32>
// CHECK:     %[[DW1:.*]] = nn.matmul %{{.*}}, %[[DH]] {transpose_lhs = true} : tensor<2x4xf32>, tensor<2x8xf32> -> tensor<4x8xf32>
// CHECK-NEXT: return %{{.*}}, %[[DW1]] : tensor<f32>, tensor<4x8xf32>

// -----

// Only the upper layer is trainable: the lower layer (matmul with the
// frozen @w1 and its relu) runs forward only, with no backward op.
peft.param @w1 : tensor<4x8xf32> frozen init "zeros"
peft.param @w2 : tensor<8x3xf32> trainable init "zeros"
func.func @loss(%x: tensor<2x4xf32>) -> tensor<f32> {
  %w1 = peft.use @w1 : tensor<4x8xf32>
  %w2 = peft.use @w2 : tensor<8x3xf32>
  %h = nn.matmul %x, %w1 : tensor<2x4xf32>, tensor<4x8xf32> -> tensor<2x8xf32>
  %a = nn.relu %h : tensor<2x8xf32>
  %y = nn.matmul %a, %w2 : tensor<2x8xf32>, tensor<8x3xf32> -> tensor<2x3xf32>
  %sq = nn.mul %y, %y : tensor<2x3xf32>, tensor<2x3xf32> -> tensor<2x3xf32>
  %l = nn.reduce_mean %sq axes [0, 1] : tensor<2x3xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// CHECK-LABEL: func.func @train_step
// CHECK-SAME:  -> (tensor<f32>, tensor<8x3xf32> {peft.grad_of = @w2})
// CHECK:       %[[A:.*]] = nn.relu
// CHECK:       nn.reduce_mean
// Below @w2 nothing is differentiated: no relu mask, no input gradient.
// CHECK-NOT:   nn.greater
// CHECK-NOT:   -> tensor<2x8xf32>
// CHECK:       %[[DW2:.*]] = nn.matmul %[[A]], %{{.*}} {transpose_lhs = true} : tensor<2x8xf32>, tensor<2x3xf32> -> tensor<8x3xf32>
// CHECK-NEXT:  return %{{.*}}, %[[DW2]] : tensor<f32>, tensor<8x3xf32>

// -----

// Tied embedding: @emb is read twice (lookup and output head); its one
// gradient is the sum of both. A bias read once gets its own gradient.
peft.param @emb : tensor<10x4xf32> trainable init "zeros"
peft.param @bias : tensor<4xf32> trainable init "zeros"
func.func @loss(%ids: tensor<2x3xi64>) -> (tensor<f32>, tensor<2x3x10xf32>) {
  %e = peft.use @emb : tensor<10x4xf32>
  %b = peft.use @bias : tensor<4xf32>
  %h = nn.gather %e[%ids] axis 0 : tensor<10x4xf32>, tensor<2x3xi64> -> tensor<2x3x4xf32>
  %hb = nn.add %h, %b : tensor<2x3x4xf32>, tensor<4xf32> -> tensor<2x3x4xf32>
  %e2 = peft.use @emb : tensor<10x4xf32>
  %logits = nn.matmul %hb, %e2 {transpose_rhs = true} : tensor<2x3x4xf32>, tensor<10x4xf32> -> tensor<2x3x10xf32>
  %l = nn.reduce_sum %logits axes [0, 1, 2] : tensor<2x3x10xf32> -> tensor<f32>
  return %l, %logits : tensor<f32>, tensor<2x3x10xf32>
}

// CHECK-LABEL: func.func @train_step
// CHECK-SAME:  -> (tensor<f32>, tensor<10x4xf32> {peft.grad_of = @emb}, tensor<4xf32> {peft.grad_of = @bias})
// The head's weight gradient is one GEMM over all 6 tokens.
// CHECK:       %[[HEAD:.*]] = nn.matmul %{{.*}}, %{{.*}} {transpose_lhs = true} : tensor<6x10xf32>, tensor<6x4xf32> -> tensor<10x4xf32>
// CHECK:       %[[DB:.*]] = nn.reshape %{{.*}} : tensor<1x1x4xf32> -> tensor<4xf32>
// CHECK:       %[[LOOKUP:.*]] = nn.scatter_nd %{{.*}}, %{{.*}} reduction "add" : tensor<10x4xf32>, tensor<2x3x1xi64>, tensor<2x3x4xf32> -> tensor<10x4xf32>
// CHECK:       %[[DEMB:.*]] = nn.add %[[HEAD]], %[[LOOKUP]] : tensor<10x4xf32>, tensor<10x4xf32>
// CHECK-NEXT:  return %{{.*}}, %[[DEMB]], %[[DB]] : tensor<f32>, tensor<10x4xf32>, tensor<4xf32>

// -----

// Several users: %h feeds two branches whose cotangents are summed before
// flowing into the trainable param; the auxiliary output is dropped.
peft.param @w : tensor<3xf32> trainable init "zeros"
func.func @loss(%x: tensor<3xf32>) -> tensor<f32> {
  %w = peft.use @w : tensor<3xf32>
  %h = nn.mul %x, %w : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  %s = nn.sigmoid %h : tensor<3xf32>
  %t = nn.tanh %h : tensor<3xf32>
  %u = nn.add %s, %t : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  %l = nn.reduce_sum %u axes [0] : tensor<3xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// CHECK-LABEL: func.func @train_step
// CHECK:       %[[H:.*]] = nn.mul %arg0
// CHECK:       nn.reduce_sum
// CHECK-NOT:   nn.mul %{{.*}}, %arg0
// CHECK:       %[[DH:.*]] = nn.add %{{.*}}, %{{.*}} : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
// CHECK-NEXT:  %[[DW:.*]] = nn.mul %[[DH]], %arg0
// CHECK-NEXT:  return %{{.*}}, %[[DW]] : tensor<f32>, tensor<3xf32>
