// RUN: peft-opt %s --split-input-file --peft-raise-attention | FileCheck %s

// LLaMA as torch.onnx writes it: Q·Kᵀ with K transposed by perm [0, 1, 3, 2],
// scaled by a constant, plus the additive mask, softmax, times V; K and V
// repeated from 2 to 4 heads. The op reads K and V before the repeat.
// CHECK-LABEL: func.func @llama
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x8x16xf32>, %[[K:.*]]: tensor<2x2x8x16xf32>, %[[V:.*]]: tensor<2x2x8x16xf32>, %[[M:.*]]: tensor<2x1x8x8xf32>)
// CHECK-NEXT: %[[A:.*]] = nn.attention %[[Q]], %[[K]], %[[V]] mask %[[M]] {scale = 2.500000e-01 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> mask tensor<2x1x8x8xf32>
// CHECK-NEXT: return %[[A]]
func.func @llama(%q: tensor<2x4x8x16xf32>, %k: tensor<2x2x8x16xf32>, %v: tensor<2x2x8x16xf32>, %m: tensor<2x1x8x8xf32>) -> tensor<2x4x8x16xf32> {
  %c = nn.constant dense<2.500000e-01> : tensor<f32>
  %k1 = nn.reshape %k : tensor<2x2x8x16xf32> -> tensor<2x2x1x8x16xf32>
  %k2 = nn.broadcast_to %k1 : tensor<2x2x1x8x16xf32> -> tensor<2x2x2x8x16xf32>
  %k3 = nn.reshape %k2 : tensor<2x2x2x8x16xf32> -> tensor<2x4x8x16xf32>
  %v1 = nn.reshape %v : tensor<2x2x8x16xf32> -> tensor<2x2x1x8x16xf32>
  %v2 = nn.broadcast_to %v1 : tensor<2x2x1x8x16xf32> -> tensor<2x2x2x8x16xf32>
  %v3 = nn.reshape %v2 : tensor<2x2x2x8x16xf32> -> tensor<2x4x8x16xf32>
  %kt = nn.transpose %k3 perm [0, 1, 3, 2] : tensor<2x4x8x16xf32> -> tensor<2x4x16x8xf32>
  %s = nn.matmul %q, %kt : tensor<2x4x8x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x8x8xf32>
  %sc = nn.mul %s, %c : tensor<2x4x8x8xf32>, tensor<f32> -> tensor<2x4x8x8xf32>
  %l = nn.add %sc, %m : tensor<2x4x8x8xf32>, tensor<2x1x8x8xf32> -> tensor<2x4x8x8xf32>
  %p = nn.softmax %l axis 3 : tensor<2x4x8x8xf32>
  %o = nn.matmul %p, %v3 : tensor<2x4x8x8xf32>, tensor<2x4x8x16xf32> -> tensor<2x4x8x16xf32>
  return %o : tensor<2x4x8x16xf32>
}

// -----

// GPT-2: K transposed straight from [B, S, H, D] by perm [0, 2, 3, 1], the
// scores divided by sqrt(head_dim) computed from constants, and the causal
// table sliced out of a bool buffer applied by where(cond, scores, min).
// CHECK-LABEL: func.func @gpt2
// CHECK-SAME: (%[[Q:.*]]: tensor<2x2x4x8xf32>, %[[K:.*]]: tensor<2x4x2x8xf32>, %[[V:.*]]: tensor<2x2x4x8xf32>)
// CHECK-NEXT: %[[KT:.*]] = nn.transpose %[[K]] perm [0, 2, 1, 3] : tensor<2x4x2x8xf32> -> tensor<2x2x4x8xf32>
// CHECK-NEXT: %[[A:.*]] = nn.attention %[[Q]], %[[KT]], %[[V]] {causal = true, scale = 2.500000e-01 : f64} : tensor<2x2x4x8xf32>, tensor<2x2x4x8xf32>, tensor<2x2x4x8xf32>
// CHECK-NEXT: return %[[A]]
func.func @gpt2(%q: tensor<2x2x4x8xf32>, %k: tensor<2x4x2x8xf32>, %v: tensor<2x2x4x8xf32>) -> tensor<2x2x4x8xf32> {
  %min = nn.constant dense<-3.40282347E+38> : tensor<f32>
  %zero = nn.constant dense<0.000000e+00> : tensor<f32>
  %half = nn.constant dense<5.000000e-01> : tensor<f32>
  %d = nn.constant dense<16> : tensor<i64>
  %table = nn.constant dense<[[[[true, false, false, false, false, false], [true, true, false, false, false, false], [true, true, true, false, false, false], [true, true, true, true, false, false], [true, true, true, true, true, false], [true, true, true, true, true, true]]]]> : tensor<1x1x6x6xi1>
  %kt = nn.transpose %k perm [0, 2, 3, 1] : tensor<2x4x2x8xf32> -> tensor<2x2x8x4xf32>
  %s = nn.matmul %q, %kt : tensor<2x2x4x8xf32>, tensor<2x2x8x4xf32> -> tensor<2x2x4x4xf32>
  %df = nn.cast %d : tensor<i64> -> tensor<f32>
  %sqrt = nn.pow %df, %half : tensor<f32>, tensor<f32> -> tensor<f32>
  %div = nn.add %sqrt, %zero : tensor<f32>, tensor<f32> -> tensor<f32>
  %sc = nn.div %s, %div : tensor<2x2x4x4xf32>, tensor<f32> -> tensor<2x2x4x4xf32>
  %rows = nn.slice %table starts [0, 0, 0, 0] sizes [1, 1, 4, 6] steps [1, 1, 1, 1] : tensor<1x1x6x6xi1> -> tensor<1x1x4x6xi1>
  %cond = nn.slice %rows starts [0, 0, 0, 0] sizes [1, 1, 4, 4] steps [1, 1, 1, 1] : tensor<1x1x4x6xi1> -> tensor<1x1x4x4xi1>
  %l = nn.where %cond, %sc, %min : tensor<1x1x4x4xi1>, tensor<2x2x4x4xf32>, tensor<f32> -> tensor<2x2x4x4xf32>
  %p = nn.softmax %l axis 3 : tensor<2x2x4x4xf32>
  %o = nn.matmul %p, %v : tensor<2x2x4x4xf32>, tensor<2x2x4x8xf32> -> tensor<2x2x4x8xf32>
  return %o : tensor<2x2x4x8xf32>
}

// -----

// A where whose table is not causal becomes the additive mask
// where(cond, 0, fill); it adds to the graph's own mask. Scalings on Q and
// on K (before its transpose) fold into `scale` (0.5 · 0.5 / 2).
// CHECK-LABEL: func.func @where_mask
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x3x4xf32>, %[[K:.*]]: tensor<1x2x3x4xf32>, %[[V:.*]]: tensor<1x2x3x4xf32>, %[[C:.*]]: tensor<1x1x3x3xi1>, %[[M:.*]]: tensor<1x1x1x3xf32>)
// CHECK-DAG: %[[FILL:.*]] = nn.constant dense<-1.000000e+30> : tensor<f32>
// CHECK-DAG: %[[ZERO:.*]] = nn.constant dense<0.000000e+00> : tensor<f32>
// CHECK: %[[W:.*]] = nn.where %[[C]], %[[ZERO]], %[[FILL]] : tensor<1x1x3x3xi1>, tensor<f32>, tensor<f32> -> tensor<1x1x3x3xf32>
// CHECK-NEXT: %[[MASK:.*]] = nn.add %[[M]], %[[W]] : tensor<1x1x1x3xf32>, tensor<1x1x3x3xf32> -> tensor<1x1x3x3xf32>
// CHECK-NEXT: %[[A:.*]] = nn.attention %[[Q]], %[[K]], %[[V]] mask %[[MASK]] {scale = 1.250000e-01 : f64}
// CHECK-NOT: nn.softmax
func.func @where_mask(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>, %cond: tensor<1x1x3x3xi1>, %m: tensor<1x1x1x3xf32>) -> tensor<1x2x3x4xf32> {
  %half = nn.constant dense<5.000000e-01> : tensor<f32>
  %two = nn.constant dense<2.000000e+00> : tensor<f32>
  %fill = nn.constant dense<-1.000000e+30> : tensor<f32>
  %qs = nn.mul %q, %half : tensor<1x2x3x4xf32>, tensor<f32> -> tensor<1x2x3x4xf32>
  %ks = nn.mul %half, %k : tensor<f32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x4xf32>
  %kt = nn.transpose %ks perm [0, 1, 3, 2] : tensor<1x2x3x4xf32> -> tensor<1x2x4x3xf32>
  %s = nn.matmul %qs, %kt : tensor<1x2x3x4xf32>, tensor<1x2x4x3xf32> -> tensor<1x2x3x3xf32>
  %sc = nn.div %s, %two : tensor<1x2x3x3xf32>, tensor<f32> -> tensor<1x2x3x3xf32>
  %l0 = nn.add %m, %sc : tensor<1x1x1x3xf32>, tensor<1x2x3x3xf32> -> tensor<1x2x3x3xf32>
  %l = nn.where %cond, %l0, %fill : tensor<1x1x3x3xi1>, tensor<1x2x3x3xf32>, tensor<f32> -> tensor<1x2x3x3xf32>
  %p = nn.softmax %l axis 3 : tensor<1x2x3x3xf32>
  %o = nn.matmul %p, %v : tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x4xf32>
  return %o : tensor<1x2x3x4xf32>
}

// -----

// wav2vec2: heads flattened into the batch ([B·H, T, D]); the op reads the
// [B, H, T, D] tensors the reshapes flattened and its result is flattened
// back. No scaling here (Q was scaled before the reshapes): scale 1.
// CHECK-LABEL: func.func @flattened_heads
// CHECK-SAME: (%[[Q:.*]]: tensor<2x2x5x4xf32>, %[[K:.*]]: tensor<2x2x5x4xf32>, %[[V:.*]]: tensor<2x2x5x4xf32>)
// CHECK-NEXT: %[[A:.*]] = nn.attention %[[Q]], %[[K]], %[[V]] {scale = 1.000000e+00 : f64} : tensor<2x2x5x4xf32>, tensor<2x2x5x4xf32>, tensor<2x2x5x4xf32>
// CHECK-NEXT: %[[R:.*]] = nn.reshape %[[A]] : tensor<2x2x5x4xf32> -> tensor<4x5x4xf32>
// CHECK-NEXT: return %[[R]]
func.func @flattened_heads(%q: tensor<2x2x5x4xf32>, %k: tensor<2x2x5x4xf32>, %v: tensor<2x2x5x4xf32>) -> tensor<4x5x4xf32> {
  %q3 = nn.reshape %q : tensor<2x2x5x4xf32> -> tensor<4x5x4xf32>
  %k3 = nn.reshape %k : tensor<2x2x5x4xf32> -> tensor<4x5x4xf32>
  %v3 = nn.reshape %v : tensor<2x2x5x4xf32> -> tensor<4x5x4xf32>
  %kt = nn.transpose %k3 perm [0, 2, 1] : tensor<4x5x4xf32> -> tensor<4x4x5xf32>
  %s = nn.matmul %q3, %kt : tensor<4x5x4xf32>, tensor<4x4x5xf32> -> tensor<4x5x5xf32>
  %p = nn.softmax %s axis 2 : tensor<4x5x5xf32>
  %o = nn.matmul %p, %v3 : tensor<4x5x5xf32>, tensor<4x5x4xf32> -> tensor<4x5x4xf32>
  return %o : tensor<4x5x4xf32>
}

// -----

// Not attention: the softmax runs over the queries (axis 2).
// CHECK-LABEL: func.func @softmax_other_axis
// CHECK-NOT: nn.attention
// CHECK: nn.softmax %{{.*}} axis 2
func.func @softmax_other_axis(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32> {
  %s = nn.matmul %q, %k {transpose_rhs = true} : tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x3xf32>
  %p = nn.softmax %s axis 2 : tensor<1x2x3x3xf32>
  %o = nn.matmul %p, %v : tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x4xf32>
  return %o : tensor<1x2x3x4xf32>
}

// -----

// A multiplicative mask is not an additive one: unchanged.
// CHECK-LABEL: func.func @multiplied_mask
// CHECK-NOT: nn.attention
// CHECK: nn.mul
// CHECK: nn.softmax
func.func @multiplied_mask(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>, %m: tensor<1x1x3x3xf32>) -> tensor<1x2x3x4xf32> {
  %s = nn.matmul %q, %k {transpose_rhs = true} : tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x3xf32>
  %l = nn.mul %s, %m : tensor<1x2x3x3xf32>, tensor<1x1x3x3xf32> -> tensor<1x2x3x3xf32>
  %p = nn.softmax %l axis 3 : tensor<1x2x3x3xf32>
  %o = nn.matmul %p, %v : tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x4xf32>
  return %o : tensor<1x2x3x4xf32>
}

// -----

// where(cond, scores, -100) does not mask as an addition would (the kept
// logits of a fully masked row would differ): unchanged.
// CHECK-LABEL: func.func @where_small_fill
// CHECK-NOT: nn.attention
// CHECK: nn.where
// CHECK: nn.softmax
func.func @where_small_fill(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>, %cond: tensor<1x1x3x3xi1>) -> tensor<1x2x3x4xf32> {
  %fill = nn.constant dense<-1.000000e+02> : tensor<f32>
  %s = nn.matmul %q, %k {transpose_rhs = true} : tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x3xf32>
  %l = nn.where %cond, %s, %fill : tensor<1x1x3x3xi1>, tensor<1x2x3x3xf32>, tensor<f32> -> tensor<1x2x3x3xf32>
  %p = nn.softmax %l axis 3 : tensor<1x2x3x3xf32>
  %o = nn.matmul %p, %v : tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x4xf32>
  return %o : tensor<1x2x3x4xf32>
}

// -----

// A scaling after the mask would scale the mask too; the probabilities
// returned as a second result are needed outside the op. Both unchanged.
// CHECK-LABEL: func.func @scaled_mask
// CHECK-NOT: nn.attention
// CHECK: nn.softmax
// CHECK-LABEL: func.func @probs_used
// CHECK-NOT: nn.attention
// CHECK: nn.softmax
func.func @scaled_mask(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>, %m: tensor<1x1x3x3xf32>) -> tensor<1x2x3x4xf32> {
  %c = nn.constant dense<2.500000e-01> : tensor<f32>
  %s = nn.matmul %q, %k {transpose_rhs = true} : tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x3xf32>
  %l0 = nn.add %s, %m : tensor<1x2x3x3xf32>, tensor<1x1x3x3xf32> -> tensor<1x2x3x3xf32>
  %l = nn.mul %l0, %c : tensor<1x2x3x3xf32>, tensor<f32> -> tensor<1x2x3x3xf32>
  %p = nn.softmax %l axis 3 : tensor<1x2x3x3xf32>
  %o = nn.matmul %p, %v : tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x4xf32>
  return %o : tensor<1x2x3x4xf32>
}
func.func @probs_used(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>) -> (tensor<1x2x3x4xf32>, tensor<1x2x3x3xf32>) {
  %s = nn.matmul %q, %k {transpose_rhs = true} : tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x3xf32>
  %p = nn.softmax %s axis 3 : tensor<1x2x3x3xf32>
  %o = nn.matmul %p, %v : tensor<1x2x3x3xf32>, tensor<1x2x3x4xf32> -> tensor<1x2x3x4xf32>
  return %o, %p : tensor<1x2x3x4xf32>, tensor<1x2x3x3xf32>
}
