// RUN: peft-opt %s --peft-plan-memory=print | FileCheck %s

// Arguments are placed first; %a dies at its last reader and %c reuses its
// range, %e the range of %x (dead after the first GEMM); %b is returned
// and lives to the end; views and params take no arena space; the GEMM
// that reads its accumulator last updates it in place (not counted twice
// in the sum).
// CHECK: memory plan: arena peak 256 bytes, sum of buffers 384 bytes (peak/sum 0.667)
// CHECK: arg 0 offset 0 bytes 64
// CHECK: arg 1 offset 64 bytes 16
// CHECK: func.func @f(%arg0: tensor<4x4xf32>, %arg1: tensor<4xf32>) -> (tensor<16xf32>, tensor<4x4xf32>) attributes {kern.arg_offsets = array<i64: 0, 64>}
// CHECK: %[[A:.*]] = kern.launch @k0(%arg0, %arg1) {kern.offsets = array<i64: 128>}
// CHECK: %[[B:.*]] = kern.launch @k0(%[[A]], %arg1) {kern.offsets = array<i64: 192>}
// CHECK: %[[C:.*]] = kern.gemm %arg0, %[[W:.*]] {kern.offsets = array<i64: 128>}
// CHECK: %[[D:.*]] = kern.gemm %[[W]], %[[W]] acc %[[C]] {beta = 1.000000e+00 : f64, kern.offsets = array<i64: 128>}
// CHECK: %[[E:.*]] = kern.launch @k0(%[[D]], %arg1) {kern.offsets = array<i64: 0>}
module {
  peft.param @w : tensor<4x4xf32> frozen init "zeros"
  func.func @f(%x: tensor<4x4xf32>, %v: tensor<4xf32>) -> (tensor<16xf32>, tensor<4x4xf32>) {
    %w = peft.use @w : tensor<4x4xf32>
    %a = kern.launch @k0(%x, %v) : (tensor<4x4xf32>, tensor<4xf32>) -> tensor<4x4xf32>
    %b = kern.launch @k0(%a, %v) : (tensor<4x4xf32>, tensor<4xf32>) -> tensor<4x4xf32>
    %c = kern.gemm %x, %w : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %d = kern.gemm %w, %w acc %c {beta = 1.0 : f64} : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %e = kern.launch @k0(%d, %v) : (tensor<4x4xf32>, tensor<4xf32>) -> tensor<4x4xf32>
    %r = nn.reshape %b : tensor<4x4xf32> -> tensor<16xf32>
    return %r, %e : tensor<16xf32>, tensor<4x4xf32>
  }
  func.func private @k0(%x: tensor<4x4xf32>, %v: tensor<4xf32>) -> tensor<4x4xf32> attributes {kern.kernel} {
    %y = nn.add %x, %v : tensor<4x4xf32>, tensor<4xf32> -> tensor<4x4xf32>
    return %y : tensor<4x4xf32>
  }
}
