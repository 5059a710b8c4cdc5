// peft.sparse_delta and peft.sparse_gather: round trip, and the shapes
// their inference rejects.
// RUN: peft-opt %s --split-input-file --verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @ops
// CHECK: peft.sparse_delta %{{.*}}, %{{.*}}, %{{.*}} {transposed} : tensor<4x5xf32>, tensor<3xi64>, tensor<3xf32>
// CHECK: peft.sparse_gather %{{.*}}, %{{.*}} : tensor<4x5xf32>, tensor<3xi64> -> tensor<3xf32>
func.func @ops(%w: tensor<4x5xf32>, %i: tensor<3xi64>, %v: tensor<3xf32>) -> (tensor<4x5xf32>, tensor<3xf32>) {
  %y = peft.sparse_delta %w, %i, %v {transposed} : tensor<4x5xf32>, tensor<3xi64>, tensor<3xf32>
  %g = peft.sparse_gather %y, %i : tensor<4x5xf32>, tensor<3xi64> -> tensor<3xf32>
  return %y, %g : tensor<4x5xf32>, tensor<3xf32>
}

// -----

func.func @values_shape(%w: tensor<4x5xf32>, %i: tensor<3xi64>, %v: tensor<2xf32>) -> tensor<4x5xf32> {
  // expected-error @+1 {{'peft.sparse_delta' op values must be [k] = [3] of the weight's element type}}
  %y = peft.sparse_delta %w, %i, %v : tensor<4x5xf32>, tensor<3xi64>, tensor<2xf32>
  return %y : tensor<4x5xf32>
}

// -----

func.func @values_type(%w: tensor<4x5xf32>, %i: tensor<3xi64>, %v: tensor<3xf64>) -> tensor<4x5xf32> {
  // expected-error @+1 {{'peft.sparse_delta' op values must be [k] = [3] of the weight's element type}}
  %y = peft.sparse_delta %w, %i, %v : tensor<4x5xf32>, tensor<3xi64>, tensor<3xf64>
  return %y : tensor<4x5xf32>
}

// -----

func.func @transposed_vector(%w: tensor<20xf32>, %i: tensor<3xi64>, %v: tensor<3xf32>) -> tensor<20xf32> {
  // expected-error @+1 {{'peft.sparse_delta' op 'transposed' indexes the transpose of a matrix; the operand has rank 1}}
  %y = peft.sparse_delta %w, %i, %v {transposed} : tensor<20xf32>, tensor<3xi64>, tensor<3xf32>
  return %y : tensor<20xf32>
}

// -----

func.func @too_many(%x: tensor<2x2xf32>, %i: tensor<5xi64>) -> tensor<5xf32> {
  // expected-error @+2 {{'peft.sparse_gather' op 5 distinct indices into a tensor of 4 elements}}
  // expected-error @+1 {{'peft.sparse_gather' op failed to infer returned types}}
  %y = peft.sparse_gather %x, %i : tensor<2x2xf32>, tensor<5xi64> -> tensor<5xf32>
  return %y : tensor<5xf32>
}
