// RUN: peft-opt %s --peft-decompose | FileCheck %s

// nn.attention expands into the GEMMs and softmax of its definition: the
// prefix concatenated in front of K and V (broadcast over the batch when
// B > 1), the 2 KV heads repeated for 4 query heads, (Q·Kᵀ)·scale, the mask
// padded with P zero columns, the causal -inf table over [T, P + S], the
// softmax over the keys, times V.
// CHECK-LABEL: func.func @full
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x3x2xf32>, %[[K:.*]]: tensor<2x2x3x2xf32>, %[[V:.*]]: tensor<2x2x3x2xf32>, %[[M:.*]]: tensor<1x3xf32>, %[[PK:.*]]: tensor<2x2x2xf32>, %[[PV:.*]]: tensor<2x2x2xf32>)
// CHECK-NEXT: %[[PK1:.*]] = nn.reshape %[[PK]] : tensor<2x2x2xf32> -> tensor<1x2x2x2xf32>
// CHECK-NEXT: %[[PKB:.*]] = nn.broadcast_to %[[PK1]] : tensor<1x2x2x2xf32> -> tensor<2x2x2x2xf32>
// CHECK-NEXT: %[[KC:.*]] = nn.concat %[[PKB]], %[[K]] axis 2 : tensor<2x2x2x2xf32>, tensor<2x2x3x2xf32> -> tensor<2x2x5x2xf32>
// CHECK-NEXT: %[[K5:.*]] = nn.reshape %[[KC]] : tensor<2x2x5x2xf32> -> tensor<2x2x1x5x2xf32>
// CHECK-NEXT: %[[KR:.*]] = nn.broadcast_to %[[K5]] : tensor<2x2x1x5x2xf32> -> tensor<2x2x2x5x2xf32>
// CHECK-NEXT: %[[KW:.*]] = nn.reshape %[[KR]] : tensor<2x2x2x5x2xf32> -> tensor<2x4x5x2xf32>
// CHECK:      %[[VW:.*]] = nn.reshape %{{.*}} : tensor<2x2x2x5x2xf32> -> tensor<2x4x5x2xf32>
// CHECK-NEXT: %[[S:.*]] = nn.matmul %[[Q]], %[[KW]] {transpose_rhs = true} : tensor<2x4x3x2xf32>, tensor<2x4x5x2xf32> -> tensor<2x4x3x5xf32>
// CHECK-NEXT: %[[C:.*]] = nn.constant dense<5.000000e-01> : tensor<f32>
// CHECK-NEXT: %[[SC:.*]] = nn.mul %[[S]], %[[C]]
// CHECK-NEXT: %[[M4:.*]] = nn.reshape %[[M]] : tensor<1x3xf32> -> tensor<1x1x1x3xf32>
// CHECK-NEXT: %[[MP:.*]] = nn.pad %[[M4]] mode "constant" low [0, 0, 0, 2] high [0, 0, 0, 0] : tensor<1x1x1x3xf32> -> tensor<1x1x1x5xf32>
// CHECK-NEXT: %[[L:.*]] = nn.add %[[SC]], %[[MP]]
// CHECK-NEXT: %[[CAUSAL:.*]] = nn.constant dense<{{\[}}[0.000000e+00, 0.000000e+00, 0.000000e+00, 0xFF800000, 0xFF800000], [0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 0xFF800000], [0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00]]> : tensor<3x5xf32>
// CHECK-NEXT: %[[LC:.*]] = nn.add %[[L]], %[[CAUSAL]] : tensor<2x4x3x5xf32>, tensor<3x5xf32> -> tensor<2x4x3x5xf32>
// CHECK-NEXT: %[[P:.*]] = nn.softmax %[[LC]] axis 3 : tensor<2x4x3x5xf32>
// CHECK-NEXT: %[[O:.*]] = nn.matmul %[[P]], %[[VW]] : tensor<2x4x3x5xf32>, tensor<2x4x5x2xf32> -> tensor<2x4x3x2xf32>
// CHECK-NEXT: return %[[O]]
func.func @full(%q: tensor<2x4x3x2xf32>, %k: tensor<2x2x3x2xf32>, %v: tensor<2x2x3x2xf32>, %m: tensor<1x3xf32>, %pk: tensor<2x2x2xf32>, %pv: tensor<2x2x2xf32>) -> tensor<2x4x3x2xf32> {
  %r = nn.attention %q, %k, %v mask %m prefix %pk, %pv {causal = true, scale = 0.5 : f64} : tensor<2x4x3x2xf32>, tensor<2x2x3x2xf32>, tensor<2x2x3x2xf32> mask tensor<1x3xf32> prefix tensor<2x2x2xf32>, tensor<2x2x2xf32>
  return %r : tensor<2x4x3x2xf32>
}

// Without prefix, mask, causal or grouping, and with scale 1: two GEMMs
// around the softmax and nothing else.
// CHECK-LABEL: func.func @plain
// CHECK-NEXT: %[[S:.*]] = nn.matmul %arg0, %arg1 {transpose_rhs = true} : tensor<1x2x3x4xf64>, tensor<1x2x3x4xf64> -> tensor<1x2x3x3xf64>
// CHECK-NEXT: %[[P:.*]] = nn.softmax %[[S]] axis 3 : tensor<1x2x3x3xf64>
// CHECK-NEXT: %[[O:.*]] = nn.matmul %[[P]], %arg2 : tensor<1x2x3x3xf64>, tensor<1x2x3x4xf64> -> tensor<1x2x3x4xf64>
// CHECK-NEXT: return %[[O]]
func.func @plain(%q: tensor<1x2x3x4xf64>, %k: tensor<1x2x3x4xf64>, %v: tensor<1x2x3x4xf64>) -> tensor<1x2x3x4xf64> {
  %r = nn.attention %q, %k, %v {scale = 1.0 : f64} : tensor<1x2x3x4xf64>, tensor<1x2x3x4xf64>, tensor<1x2x3x4xf64>
  return %r : tensor<1x2x3x4xf64>
}
