// RUN: peft-opt %s --split-input-file --verify-diagnostics | peft-opt | FileCheck %s

// kern.gemm in its forms and kern.launch round-trip.
// CHECK-LABEL: func.func @forms
// CHECK: kern.gemm %arg0, %arg1 : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
// CHECK: kern.gemm %arg0, %arg2 bias %arg3 {epilogue = "gelu_erf", trans_b = true} : (tensor<4x8xf32>, tensor<16x8xf32>, tensor<16xf32>) -> tensor<4x16xf32>
// CHECK: kern.gemm %arg0, %arg1 acc %{{.*}} {alpha = 2.000000e+00 : f64, beta = 1.000000e+00 : f64} : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
// CHECK: kern.gemm %arg4, %arg1 : (tensor<3x4x8xf32>, tensor<8x16xf32>) -> tensor<3x4x16xf32>
// CHECK: kern.gemm %arg4, %arg4 {trans_b = true} : (tensor<3x4x8xf32>, tensor<3x4x8xf32>) -> tensor<3x4x4xf32>
// CHECK: kern.launch @k0(%{{.*}}, %arg3) : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
func.func @forms(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>, %bt: tensor<16x8xf32>,
                 %bias: tensor<16xf32>, %x: tensor<3x4x8xf32>)
    -> (tensor<4x16xf32>, tensor<3x4x16xf32>, tensor<3x4x4xf32>) {
  %0 = kern.gemm %a, %b : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  %1 = kern.gemm %a, %bt bias %bias {trans_b = true, epilogue = "gelu_erf"} : (tensor<4x8xf32>, tensor<16x8xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  %2 = kern.gemm %a, %b acc %1 {alpha = 2.0 : f64, beta = 1.0 : f64} : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %3 = kern.gemm %x, %b : (tensor<3x4x8xf32>, tensor<8x16xf32>) -> tensor<3x4x16xf32>
  %4 = kern.gemm %x, %x {trans_b = true} : (tensor<3x4x8xf32>, tensor<3x4x8xf32>) -> tensor<3x4x4xf32>
  %5 = kern.launch @k0(%2, %bias) : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return %5, %3, %4 : tensor<4x16xf32>, tensor<3x4x16xf32>, tensor<3x4x4xf32>
}
func.func private @k0(%x: tensor<4x16xf32>, %b: tensor<16xf32>) -> tensor<4x16xf32> attributes {kern.kernel} {
  %y = nn.add %x, %b : tensor<4x16xf32>, tensor<16xf32> -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

func.func @inner(%a: tensor<4x8xf32>, %b: tensor<7x16xf32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{inner dimensions differ: op(a) is [4, 8] and op(b) is [7, 16]}}
  %0 = kern.gemm %a, %b : (tensor<4x8xf32>, tensor<7x16xf32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

func.func @result(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>) -> tensor<16x4xf32> {
  // expected-error @+1 {{result must be 'tensor<4x16xf32>', got 'tensor<16x4xf32>'}}
  %0 = kern.gemm %a, %b : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<16x4xf32>
  return %0 : tensor<16x4xf32>
}

// -----

func.func @batch(%a: tensor<2x4x8xf32>, %b: tensor<3x8x16xf32>) -> tensor<2x4x16xf32> {
  // expected-error @+1 {{batch sizes differ: 2 vs 3}}
  %0 = kern.gemm %a, %b : (tensor<2x4x8xf32>, tensor<3x8x16xf32>) -> tensor<2x4x16xf32>
  return %0 : tensor<2x4x16xf32>
}

// -----

func.func @bias(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>, %bias: tensor<4xf32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{bias must be [n] = [16] of 'f32', got 'tensor<4xf32>'}}
  %0 = kern.gemm %a, %b bias %bias : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<4xf32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

func.func @beta(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{beta != 0 needs an accumulator operand}}
  %0 = kern.gemm %a, %b {beta = 1.0 : f64} : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

func.func @epilogue(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{epilogue must be none, relu, gelu_erf or gelu_tanh, got "swish"}}
  %0 = kern.gemm %a, %b {epilogue = "swish"} : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

func.func @not_kernel(%a: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{callee @plain is not a kernel function (no kern.kernel attribute)}}
  %0 = kern.launch @plain(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func private @plain(%a: tensor<4xf32>) -> tensor<4xf32> {
  return %a : tensor<4xf32>
}

// -----

func.func @signature(%a: tensor<4xf32>) -> tensor<4xf64> {
  // expected-error @+1 {{types do not match the signature of @k}}
  %0 = kern.launch @k(%a) : (tensor<4xf32>) -> tensor<4xf64>
  return %0 : tensor<4xf64>
}
func.func private @k(%a: tensor<4xf32>) -> tensor<4xf32> attributes {kern.kernel} {
  return %a : tensor<4xf32>
}

// -----

func.func @missing(%a: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'nowhere' is not a func.func}}
  %0 = kern.launch @nowhere(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
