// RUN: peft-opt %s --split-input-file --peft-emit-loops --canonicalize --verify-diagnostics | FileCheck %s

// A fused elementwise kernel: a broadcast add, a splat constant, tanh and a
// comparison, two results. Buffers are flat memrefs (arguments, results,
// then the range); the bool result is stored as i8. The parallel loop runs
// over the 4 rows, an inner loop over the 8 columns along which every
// operand is contiguous (%b is broadcast over rows, so it is indexed by the
// column alone).

// CHECK-LABEL: func.func private @fused(
// CHECK-SAME: %[[X:.*]]: memref<32xf32>, %[[B:.*]]: memref<8xf32>, %[[Y:.*]]: memref<32xf32>, %[[P:.*]]: memref<32xi8>, %[[BEGIN:.*]]: index, %[[END:.*]]: index)
// CHECK-SAME: attributes {kern.extent = 4 : i64, kern.loops}
// CHECK-DAG: %[[HALF:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-DAG: %[[C8:.*]] = arith.constant 8 : index
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK: scf.for %[[ROW:.*]] = %[[BEGIN]] to %[[END]] step %[[C1]] {
// CHECK: %[[BASE:.*]] = arith.muli %[[ROW]], %[[C8]] : index
// CHECK: scf.for %[[COL:.*]] = %[[C0]] to %[[C8]] step %[[C1]] {
// CHECK: %[[XI:.*]] = arith.addi %[[BASE]], %[[COL]] : index
// CHECK: %[[XV:.*]] = memref.load %[[X]][%[[XI]]] : memref<32xf32>
// CHECK: %[[BV:.*]] = memref.load %[[B]][%[[COL]]] : memref<8xf32>
// CHECK: %[[S:.*]] = arith.addf %[[XV]], %[[BV]] : f32
// CHECK: %[[M:.*]] = arith.mulf %[[S]], %[[HALF]] : f32
// CHECK: %[[T:.*]] = math.tanh %[[M]] : f32
// CHECK: %[[G:.*]] = arith.cmpf ogt, %[[T]], %[[HALF]] : f32
// CHECK: memref.store %[[T]], %[[Y]][%{{.*}}] : memref<32xf32>
// CHECK: %[[G8:.*]] = arith.extui %[[G]] : i1 to i8
// CHECK: memref.store %[[G8]], %[[P]][%{{.*}}] : memref<32xi8>
// CHECK: }
// CHECK: } {kern.parallel}
// CHECK: return
func.func private @fused(%x: tensor<4x8xf32>, %b: tensor<8xf32>) -> (tensor<4x8xf32>, tensor<4x8xi1>) attributes {kern.kernel} {
  %half = nn.constant dense<0.5> : tensor<f32>
  %0 = nn.add %x, %b : tensor<4x8xf32>, tensor<8xf32> -> tensor<4x8xf32>
  %1 = nn.mul %0, %half : tensor<4x8xf32>, tensor<f32> -> tensor<4x8xf32>
  %2 = nn.tanh %1 : tensor<4x8xf32>
  %3 = nn.greater %2, %half : tensor<4x8xf32>, tensor<f32> -> tensor<4x8xi1>
  return %2, %3 : tensor<4x8xf32>, tensor<4x8xi1>
}

// -----

// A reduction over the middle axis: one parallel iteration per output
// element, the reduced axis an inner loop carrying the sum. Integers
// compute in i64 and are truncated on store.

// CHECK-LABEL: func.func private @rowsum(
// CHECK-SAME: %[[X:.*]]: memref<24xi32>, %[[Y:.*]]: memref<8xi32>, %[[BEGIN:.*]]: index, %[[END:.*]]: index)
// CHECK-SAME: kern.extent = 8 : i64
// CHECK: scf.for %[[O:.*]] = %[[BEGIN]] to %[[END]]
// CHECK: %[[SUM:.*]] = scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (i64) {
// CHECK: memref.load %[[X]]
// CHECK: arith.extsi %{{.*}} : i32 to i64
// CHECK: arith.addi %[[ACC]], %{{.*}} : i64
// CHECK: %[[N:.*]] = arith.trunci %[[SUM]] : i64 to i32
// CHECK: memref.store %[[N]], %[[Y]][%[[O]]] : memref<8xi32>
// CHECK: } {kern.parallel}
func.func private @rowsum(%x: tensor<2x3x4xi32>) -> tensor<2x4xi32> attributes {kern.kernel} {
  %y = nn.reduce_sum %x axes [1] : tensor<2x3x4xi32> -> tensor<2x4xi32>
  return %y : tensor<2x4xi32>
}

// -----

// Functions without kern.kernel are left alone.

// CHECK-LABEL: func.func @not_a_kernel(%{{.*}}: tensor<3xf32>) -> tensor<3xf32>
// CHECK: nn.exp
func.func @not_a_kernel(%x: tensor<3xf32>) -> tensor<3xf32> {
  %y = nn.exp %x : tensor<3xf32>
  return %y : tensor<3xf32>
}

// -----

func.func private @two_loop_ops(%x: tensor<3x4xf32>) -> tensor<3xf32> attributes {kern.kernel} {
  %s = nn.softmax %x axis 1 : tensor<3x4xf32>
  // expected-error @+1 {{loop emission: kernel 'two_loop_ops' mixes non-elementwise ops; outline one per kernel}}
  %r = nn.reduce_sum %s axes [1] : tensor<3x4xf32> -> tensor<3xf32>
  return %r : tensor<3xf32>
}

// -----

func.func private @passes_input(%x: tensor<3x4xf32>) -> (tensor<3xf32>, tensor<3x4xf32>) attributes {kern.kernel} {
  %r = nn.reduce_sum %x axes [1] : tensor<3x4xf32> -> tensor<3xf32>
  // expected-error @+1 {{loop emission: kernel 'passes_input' must return distinct results of its one op}}
  return %r, %x : tensor<3xf32>, tensor<3x4xf32>
}

