// RUN: peft-opt %s --peft-emit-loops=chunk=1 --canonicalize | FileCheck %s --check-prefix=ONE
// RUN: peft-opt %s --peft-emit-loops=chunk=2 --canonicalize | FileCheck %s --check-prefix=TWO
// RUN: not peft-opt %s --peft-emit-loops=chunk=0 2>&1 | FileCheck %s --check-prefix=BAD

// chunk=1 (the GPU form): one element per parallel iteration, operands
// indexed by the broadcast of the element's coordinates.
// ONE-LABEL: func.func private @bias(
// ONE-SAME: kern.extent = 12 : i64
// ONE: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step
// ONE: %[[J:.*]] = arith.remui %[[I]], %{{.*}} : index
// ONE: memref.load %{{.*}}[%[[I]]] : memref<12xf32>
// ONE: memref.load %{{.*}}[%[[J]]] : memref<4xf32>
// ONE: arith.addf
// ONE: } {kern.parallel}

// chunk=2: the inner run of 4 columns in 2 chunks, 3 rows x 2 = 6
// parallel iterations of 2 elements each.
// TWO-LABEL: func.func private @bias(
// TWO-SAME: kern.extent = 6 : i64
// TWO: scf.for %{{.*}} = %{{.*}} to %{{.*}} step
// TWO: arith.divui
// TWO: arith.remui
// TWO: scf.for %{{.*}} = %{{.*}} to %{{.*}} step
// TWO: } {kern.parallel}

// BAD: peft-emit-loops: chunk must be at least 1
func.func private @bias(%x: tensor<3x4xf32>, %b: tensor<4xf32>) -> tensor<3x4xf32> attributes {kern.kernel} {
  %y = nn.add %x, %b : tensor<3x4xf32>, tensor<4xf32> -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}
