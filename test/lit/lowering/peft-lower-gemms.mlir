// RUN: peft-opt %s --peft-lower-gemms | FileCheck %s

// A transposed weight folds into trans_b and the bias add into the GEMM.
// CHECK-LABEL: func.func @linear
// CHECK-NEXT: %[[Y:.*]] = kern.gemm %arg0, %arg1 bias %arg2 {trans_b = true} : (tensor<16x32xf32>, tensor<64x32xf32>, tensor<64xf32>) -> tensor<16x64xf32>
// CHECK-NEXT: return %[[Y]]
func.func @linear(%x: tensor<16x32xf32>, %w: tensor<64x32xf32>, %b: tensor<64xf32>) -> tensor<16x64xf32> {
  %wt = nn.transpose %w perm [1, 0] : tensor<64x32xf32> -> tensor<32x64xf32>
  %y = nn.matmul %x, %wt : tensor<16x32xf32>, tensor<32x64xf32> -> tensor<16x64xf32>
  %z = nn.add %y, %b : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32>
  return %z : tensor<16x64xf32>
}

// Rows of a batched operand against one matrix: one 2-D GEMM through views.
// CHECK-LABEL: func.func @rows
// CHECK-NEXT: %[[X:.*]] = nn.reshape %arg0 : tensor<2x8x32xf32> -> tensor<16x32xf32>
// CHECK-NEXT: %[[Y:.*]] = kern.gemm %[[X]], %arg1 : (tensor<16x32xf32>, tensor<32x64xf32>) -> tensor<16x64xf32>
// CHECK-NEXT: %[[R:.*]] = nn.reshape %[[Y]] : tensor<16x64xf32> -> tensor<2x8x64xf32>
// CHECK-NEXT: return %[[R]]
func.func @rows(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>) -> tensor<2x8x64xf32> {
  %y = nn.matmul %x, %w : tensor<2x8x32xf32>, tensor<32x64xf32> -> tensor<2x8x64xf32>
  return %y : tensor<2x8x64xf32>
}

// LoRA: the scale becomes the low-rank GEMM's alpha, and the base GEMM
// accumulates that (beta = 1); the views between reshapes collapse.
// CHECK-LABEL: func.func @lora
// CHECK-NEXT: %[[X:.*]] = nn.reshape %arg0 : tensor<2x8x32xf32> -> tensor<16x32xf32>
// CHECK-NEXT: %[[X2:.*]] = nn.reshape %arg0 : tensor<2x8x32xf32> -> tensor<16x32xf32>
// CHECK-NOT: nn.reshape
// CHECK-NEXT: %[[T:.*]] = kern.gemm %[[X2]], %arg2 {trans_b = true} : (tensor<16x32xf32>, tensor<4x32xf32>) -> tensor<16x4xf32>
// CHECK-NEXT: %[[LO:.*]] = kern.gemm %[[T]], %arg3 {alpha = 2.000000e+00 : f64, trans_b = true} : (tensor<16x4xf32>, tensor<64x4xf32>) -> tensor<16x64xf32>
// CHECK-NEXT: %[[Y:.*]] = kern.gemm %[[X]], %arg1 acc %[[LO]] {beta = 1.000000e+00 : f64} : (tensor<16x32xf32>, tensor<32x64xf32>, tensor<16x64xf32>) -> tensor<16x64xf32>
// CHECK-NEXT: %[[R:.*]] = nn.reshape %[[Y]] : tensor<16x64xf32> -> tensor<2x8x64xf32>
// CHECK-NEXT: return %[[R]]
func.func @lora(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) -> tensor<2x8x64xf32> {
  %base = nn.matmul %x, %w : tensor<2x8x32xf32>, tensor<32x64xf32> -> tensor<2x8x64xf32>
  %t = nn.matmul %x, %a {transpose_rhs = true} : tensor<2x8x32xf32>, tensor<4x32xf32> -> tensor<2x8x4xf32>
  %lo = nn.matmul %t, %b {transpose_rhs = true} : tensor<2x8x4xf32>, tensor<64x4xf32> -> tensor<2x8x64xf32>
  %s = nn.constant dense<2.0> : tensor<f32>
  %scaled = nn.mul %lo, %s : tensor<2x8x64xf32>, tensor<f32> -> tensor<2x8x64xf32>
  %y = nn.add %base, %scaled : tensor<2x8x64xf32>, tensor<2x8x64xf32> -> tensor<2x8x64xf32>
  return %y : tensor<2x8x64xf32>
}

// Attention scores: batch dims flattened to one; the transpose of the
// keys' last two dims folds into trans_b.
// CHECK-LABEL: func.func @batched
// CHECK: %[[Q:.*]] = nn.reshape %arg0 : tensor<2x4x8x16xf32> -> tensor<8x8x16xf32>
// CHECK: %[[K:.*]] = nn.reshape %arg1 : tensor<2x4x8x16xf32> -> tensor<8x8x16xf32>
// CHECK: %[[S:.*]] = kern.gemm %[[Q]], %[[K]] {trans_b = true} : (tensor<8x8x16xf32>, tensor<8x8x16xf32>) -> tensor<8x8x8xf32>
// CHECK: nn.reshape %[[S]] : tensor<8x8x8xf32> -> tensor<2x4x8x8xf32>
// CHECK-NOT: nn.transpose
func.func @batched(%q: tensor<2x4x8x16xf32>, %k: tensor<2x4x8x16xf32>) -> tensor<2x4x8x8xf32> {
  %kt = nn.transpose %k perm [0, 1, 3, 2] : tensor<2x4x8x16xf32> -> tensor<2x4x16x8xf32>
  %s = nn.matmul %q, %kt : tensor<2x4x8x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x8x8xf32>
  return %s : tensor<2x4x8x8xf32>
}

// A 2-D left operand against a batch: broadcast over the batch.
// CHECK-LABEL: func.func @broadcast_left
// CHECK: kern.gemm %arg0, %arg1 {trans_a = true} : (tensor<8x4xf32>, tensor<3x8x5xf32>) -> tensor<3x4x5xf32>
func.func @broadcast_left(%a: tensor<8x4xf32>, %b: tensor<3x8x5xf32>) -> tensor<3x4x5xf32> {
  %y = nn.matmul %a, %b {transpose_lhs = true} : tensor<8x4xf32>, tensor<3x8x5xf32> -> tensor<3x4x5xf32>
  return %y : tensor<3x4x5xf32>
}

// Batch dims that broadcast partially, and integer products, stay.
// CHECK-LABEL: func.func @stays
// CHECK: nn.matmul %arg0, %arg1 : tensor<2x3x4x8xf32>, tensor<3x8x5xf32> -> tensor<2x3x4x5xf32>
// CHECK: nn.matmul %arg2, %arg3 : tensor<4x8xi32>, tensor<8x5xi32> -> tensor<4x5xi32>
// CHECK-NOT: kern.gemm
func.func @stays(%a: tensor<2x3x4x8xf32>, %b: tensor<3x8x5xf32>, %c: tensor<4x8xi32>, %d: tensor<8x5xi32>) -> (tensor<2x3x4x5xf32>, tensor<4x5xi32>) {
  %y = nn.matmul %a, %b : tensor<2x3x4x8xf32>, tensor<3x8x5xf32> -> tensor<2x3x4x5xf32>
  %z = nn.matmul %c, %d : tensor<4x8xi32>, tensor<8x5xi32> -> tensor<4x5xi32>
  return %y, %z : tensor<2x3x4x5xf32>, tensor<4x5xi32>
}

// A bias add with another user of the product is not folded.
// CHECK-LABEL: func.func @shared
// CHECK: %[[Y:.*]] = kern.gemm %arg0, %arg1 : (tensor<4x8xf32>, tensor<8x5xf32>) -> tensor<4x5xf32>
// CHECK: nn.add %[[Y]], %arg2
func.func @shared(%a: tensor<4x8xf32>, %b: tensor<8x5xf32>, %bias: tensor<5xf32>) -> (tensor<4x5xf32>, tensor<4x5xf32>) {
  %y = nn.matmul %a, %b : tensor<4x8xf32>, tensor<8x5xf32> -> tensor<4x5xf32>
  %z = nn.add %y, %bias : tensor<4x5xf32>, tensor<5xf32> -> tensor<4x5xf32>
  return %y, %z : tensor<4x5xf32>, tensor<4x5xf32>
}
