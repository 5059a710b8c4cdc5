// RUN: peft-opt %s --peft-emit-loops --canonicalize | FileCheck %s

// The Householder sweep runs one parallel iteration per column (extent 2):
// the column starts as e_c in slice k = 2, then each reflector j (k−1 down
// to 0) reads slice j+1 back from the result and writes slice j. Nothing is
// allocated: the result holds every partial product.
// CHECK-LABEL: func.func private @sweep(
// CHECK-SAME: %[[X:.*]]: memref<10xf32>, %[[S:.*]]: memref<30xf32>, %[[BEGIN:.*]]: index, %[[END:.*]]: index)
// CHECK-SAME: attributes {kern.extent = 2 : i64, kern.loops}
// CHECK-NOT: memref.alloc
// CHECK: scf.for %[[C:.*]] = %[[BEGIN]] to %[[END]]
// CHECK: memref.store %{{.*}}, %[[S]]
// CHECK: scf.for
// CHECK: scf.for {{.*}} iter_args
// CHECK: memref.load %[[X]]
// CHECK: memref.load %[[S]]
// CHECK: arith.divf
// CHECK: } {kern.parallel}
func.func private @sweep(%x: tensor<5x2xf32>) -> tensor<3x5x2xf32> attributes {kern.kernel} {
  %s = peft.householder_sweep %x : tensor<5x2xf32> -> tensor<3x5x2xf32>
  return %s : tensor<3x5x2xf32>
}

// The row mask: one iteration per row of [batch, T] (extent 8), an OR over
// the example's 3 positions.
// CHECK-LABEL: func.func private @mask(
// CHECK-SAME: attributes {kern.extent = 8 : i64, kern.loops}
// CHECK: scf.for {{.*}} iter_args(%{{.*}} = %false) -> (i1)
// CHECK: arith.cmpi eq
// CHECK: arith.ori
// CHECK: } {kern.parallel}
func.func private @mask(%p: tensor<2x3xi64>) -> tensor<2x4x1xf32> attributes {kern.kernel} {
  %m = peft.intervention_mask %p : tensor<2x3xi64> -> tensor<2x4x1xf32>
  return %m : tensor<2x4x1xf32>
}

// Positions: one iteration per slot of [batch, P] (extent 2·5).
// CHECK-LABEL: func.func private @positions(
// CHECK-SAME: attributes {kern.extent = 10 : i64, kern.loops}
// CHECK: } {kern.parallel}
func.func private @positions(%l: tensor<2xi64>) -> tensor<2x5xi64> attributes {kern.kernel} {
  %p = peft.reft_positions %l {first_n = 3 : i64, last_n = 2 : i64, group = "all"} : tensor<2xi64> -> tensor<2x5xi64>
  return %p : tensor<2x5xi64>
}

// peft.dropout: one iteration per element (extent 12), Philox in i64 words.
// CHECK-LABEL: func.func private @dropout(
// CHECK-SAME: attributes {kern.extent = 12 : i64, kern.loops}
// CHECK: arith.muli {{.*}} : i64
// CHECK: arith.shrui
// CHECK: } {kern.parallel}
func.func private @dropout(%x: tensor<3x4xf32>, %s: tensor<i64>) -> tensor<3x4xf32> attributes {kern.kernel} {
  %y = peft.dropout %x, %s {p = 1.000000e-01 : f64, seed = 3 : i64, stream = 0 : i64} : tensor<3x4xf32>, tensor<i64>
  return %y : tensor<3x4xf32>
}
