// RUN: peft-opt %s --peft-decompose | FileCheck %s

// LoReFT on all 16 rows: s = h·(Wᵀ − R) + b is one GEMM, then s·Rᵀ; the
// sum h + delta is kept on the rows the positions select (an i1 row mask)
// and every other row is h itself.
// CHECK-LABEL: func.func @loreft
// CHECK: %[[ROWS:.*]] = nn.reshape %arg0 : tensor<2x8x32xf32> -> tensor<16x32xf32>
// CHECK: %[[WT:.*]] = nn.transpose %arg2 perm [1, 0]
// CHECK: %[[SRC:.*]] = nn.sub %[[WT]], %arg1 : tensor<32x4xf32>, tensor<32x4xf32>
// CHECK: %[[HS:.*]] = nn.matmul %[[ROWS]], %[[SRC]] : tensor<16x32xf32>, tensor<32x4xf32> -> tensor<16x4xf32>
// CHECK: %[[S:.*]] = nn.add %[[HS]], %arg3
// CHECK: %[[D:.*]] = nn.matmul %[[S]], %arg1 {transpose_rhs = true} : tensor<16x4xf32>, tensor<32x4xf32> -> tensor<16x32xf32>
// CHECK: %[[D3:.*]] = nn.reshape %[[D]] : tensor<16x32xf32> -> tensor<2x8x32xf32>
// CHECK: %[[M:.*]] = peft.intervention_mask %arg4 : tensor<2x5xi64> -> tensor<2x8x1xf32>
// CHECK: %[[C:.*]] = nn.cast %[[M]] : tensor<2x8x1xf32> -> tensor<2x8x1xi1>
// CHECK: %[[Y:.*]] = nn.add %arg0, %[[D3]]
// CHECK: %[[R:.*]] = nn.where %[[C]], %[[Y]], %arg0
// CHECK-NOT: peft.loreft
// CHECK: return %[[R]]
func.func @loreft(%h: tensor<2x8x32xf32>, %r: tensor<32x4xf32>, %w: tensor<4x32xf32>, %b: tensor<4xf32>, %p: tensor<2x5xi64>) -> tensor<2x8x32xf32> {
  %y = peft.loreft %h, %r, %w, %b, %p : tensor<2x8x32xf32>, tensor<32x4xf32>, tensor<4x32xf32>, tensor<4xf32>, tensor<2x5xi64> -> tensor<2x8x32xf32>
  return %y : tensor<2x8x32xf32>
}

// NodiReFT: (h·Wᵀ + b)·P, masked the same way.
// CHECK-LABEL: func.func @nodireft
// CHECK: %[[U:.*]] = nn.matmul %{{.*}}, %arg1 {transpose_rhs = true} : tensor<16x32xf32>, tensor<4x32xf32> -> tensor<16x4xf32>
// CHECK: %[[UB:.*]] = nn.add %[[U]], %arg2
// CHECK: nn.matmul %[[UB]], %arg3 : tensor<16x4xf32>, tensor<4x32xf32> -> tensor<16x32xf32>
// CHECK: peft.intervention_mask %arg4
// CHECK: nn.where
// CHECK-NOT: peft.nodireft
func.func @nodireft(%h: tensor<2x8x32xf32>, %w: tensor<4x32xf32>, %b: tensor<4xf32>, %proj: tensor<4x32xf32>, %p: tensor<2x5xi64>) -> tensor<2x8x32xf32> {
  %y = peft.nodireft %h, %w, %b, %proj, %p : tensor<2x8x32xf32>, tensor<4x32xf32>, tensor<4xf32>, tensor<4x32xf32>, tensor<2x5xi64> -> tensor<2x8x32xf32>
  return %y : tensor<2x8x32xf32>
}

// The Householder map: slice 0 of the sweep from I[32, 4] is the product
// H_0·…·H_3·I; its columns take the signs int(X[j, j]) (an i64 round trip
// truncates toward zero), and the frozen base multiplies as one GEMM.
// CHECK-LABEL: func.func @householder
// CHECK: %[[SW:.*]] = peft.householder_sweep %arg0 : tensor<32x4xf32> -> tensor<5x32x4xf32>
// CHECK: %[[P0:.*]] = nn.slice %[[SW]] starts [0, 0, 0] sizes [1, 32, 4]
// CHECK: %[[H:.*]] = nn.reshape %[[P0]] : tensor<1x32x4xf32> -> tensor<32x4xf32>
// CHECK: %[[TOP:.*]] = nn.slice %arg0 starts [0, 0] sizes [4, 4]
// CHECK: %[[DIAG:.*]] = nn.einsum "ii->i" %[[TOP]]
// CHECK: %[[I:.*]] = nn.cast %[[DIAG]] : tensor<4xf32> -> tensor<4xi64>
// CHECK: %[[SIGN:.*]] = nn.cast %[[I]] : tensor<4xi64> -> tensor<4xf32>
// CHECK: %[[HS:.*]] = nn.mul %[[H]], %[[SIGN]]
// CHECK: %[[Q:.*]] = nn.matmul %arg1, %[[HS]] : tensor<32x32xf32>, tensor<32x4xf32> -> tensor<32x4xf32>
// CHECK: return %[[Q]]
func.func @householder(%x: tensor<32x4xf32>, %base: tensor<32x32xf32>) -> tensor<32x4xf32> {
  %q = peft.householder_orthogonal %x, %base : tensor<32x4xf32>, tensor<32x32xf32> -> tensor<32x4xf32>
  return %q : tensor<32x4xf32>
}

// The gradient: G_0 = (baseᵀ·dQ)·diag(sign), the sweep of I (P_{j+1}) and
// the adjoint sweep of G_0 (G_j), then batched GEMMs over the 4 reflectors
// (a_j = v_jᵀ·P_{j+1}, c_j = v_jᵀ·G_j, G_j·a_j, P_{j+1}·c_j) and the strictly
// lower triangle of the result.
// CHECK-LABEL: func.func @householder_grad
// CHECK: nn.matmul %arg1, %arg2 {transpose_lhs = true} : tensor<32x32xf32>, tensor<32x4xf32> -> tensor<32x4xf32>
// CHECK: %[[G0:.*]] = nn.mul
// CHECK: %[[SW:.*]] = peft.householder_sweep %arg0 : tensor<32x4xf32> -> tensor<5x32x4xf32>
// CHECK: %[[NEXT:.*]] = nn.slice %[[SW]] starts [1, 0, 0] sizes [4, 32, 4]
// CHECK: %[[ADJ:.*]] = peft.householder_sweep %arg0, %[[G0]] {adjoint} : tensor<32x4xf32>, tensor<32x4xf32> -> tensor<5x32x4xf32>
// CHECK: %[[LEFT:.*]] = nn.slice %[[ADJ]] starts [0, 0, 0] sizes [4, 32, 4]
// CHECK: %[[V:.*]] = nn.reshape %{{.*}} : tensor<4x32xf32> -> tensor<4x1x32xf32>
// CHECK: %[[A:.*]] = nn.matmul %[[V]], %[[NEXT]] : tensor<4x1x32xf32>, tensor<4x32x4xf32> -> tensor<4x1x4xf32>
// CHECK: %[[C:.*]] = nn.matmul %[[V]], %[[LEFT]] : tensor<4x1x32xf32>, tensor<4x32x4xf32> -> tensor<4x1x4xf32>
// CHECK: nn.matmul %[[LEFT]], %{{.*}} : tensor<4x32x4xf32>, tensor<4x4x1xf32> -> tensor<4x32x1xf32>
// CHECK: nn.matmul %[[NEXT]], %{{.*}} : tensor<4x32x4xf32>, tensor<4x4x1xf32> -> tensor<4x32x1xf32>
// CHECK: %[[DX:.*]] = nn.trilu %{{.*}} upper false k -1 : tensor<32x4xf32>
// CHECK: return %[[DX]]
func.func @householder_grad(%x: tensor<32x4xf32>, %base: tensor<32x32xf32>, %dq: tensor<32x4xf32>) -> tensor<32x4xf32> {
  %dx = peft.householder_orthogonal_grad %x, %base, %dq : tensor<32x4xf32>, tensor<32x32xf32> -> tensor<32x4xf32>
  return %dx : tensor<32x4xf32>
}
