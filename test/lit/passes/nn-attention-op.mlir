// RUN: peft-opt %s --split-input-file --verify-diagnostics | peft-opt | FileCheck %s

// nn.attention round-trips with and without its optional operands.
// CHECK-LABEL: func.func @forms
// CHECK: nn.attention %{{.*}}, %{{.*}}, %{{.*}} {scale = 2.500000e-01 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>
// CHECK: nn.attention %{{.*}}, %{{.*}}, %{{.*}} mask %{{.*}} {causal = true, scale = 1.000000e+00 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> mask tensor<2x1x1x8xf32>
// CHECK: nn.attention %{{.*}}, %{{.*}}, %{{.*}} mask %{{.*}} prefix %{{.*}}, %{{.*}} {scale = 2.500000e-01 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> mask tensor<8xf32> prefix tensor<2x3x16xf32>, tensor<2x3x16xf32>
// CHECK: nn.attention %{{.*}}, %{{.*}}, %{{.*}} prefix %{{.*}}, %{{.*}} {scale = 2.500000e-01 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> prefix tensor<2x3x16xf32>, tensor<2x3x16xf32>
func.func @forms(%q: tensor<2x4x8x16xf32>, %k: tensor<2x2x8x16xf32>, %v: tensor<2x2x8x16xf32>,
                 %m: tensor<2x1x1x8xf32>, %m1: tensor<8xf32>, %pk: tensor<2x3x16xf32>, %pv: tensor<2x3x16xf32>)
    -> (tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>) {
  %0 = nn.attention %q, %k, %v {scale = 0.25 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>
  %1 = nn.attention %q, %k, %v mask %m {scale = 1.0 : f64, causal = true} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> mask tensor<2x1x1x8xf32>
  %2 = nn.attention %q, %k, %v mask %m1 prefix %pk, %pv {scale = 0.25 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> mask tensor<8xf32> prefix tensor<2x3x16xf32>, tensor<2x3x16xf32>
  %3 = nn.attention %q, %k, %v prefix %pk, %pv {scale = 0.25 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> prefix tensor<2x3x16xf32>, tensor<2x3x16xf32>
  return %0, %1, %2, %3 : tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>
}

// -----

func.func @heads(%q: tensor<2x4x8x16xf32>, %k: tensor<2x3x8x16xf32>) -> tensor<2x4x8x16xf32> {
  // expected-error @+1 {{query heads 4 are not a multiple of key/value heads 3}}
  %0 = nn.attention %q, %k, %k {scale = 0.25 : f64} : tensor<2x4x8x16xf32>, tensor<2x3x8x16xf32>, tensor<2x3x8x16xf32>
  return %0 : tensor<2x4x8x16xf32>
}

// -----

func.func @depth(%q: tensor<2x4x8x16xf32>, %k: tensor<2x2x8x8xf32>) -> tensor<2x4x8x16xf32> {
  // expected-error @+1 {{key/value [2, 2, 8, 8] must be [B=2, Hkv, S, D=16] for query [2, 4, 8, 16]}}
  %0 = nn.attention %q, %k, %k {scale = 0.25 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x8xf32>, tensor<2x2x8x8xf32>
  return %0 : tensor<2x4x8x16xf32>
}

// -----

func.func @kv(%q: tensor<2x4x8x16xf32>, %k: tensor<2x2x8x16xf32>, %v: tensor<2x2x6x16xf32>) -> tensor<2x4x8x16xf32> {
  // expected-error @+1 {{key [2, 2, 8, 16] and value [2, 2, 6, 16] shapes differ}}
  %0 = nn.attention %q, %k, %v {scale = 0.25 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x6x16xf32>
  return %0 : tensor<2x4x8x16xf32>
}

// -----

func.func @rank(%q: tensor<8x8x16xf32>, %k: tensor<8x8x16xf32>) -> tensor<8x8x16xf32> {
  // expected-error @+1 {{needs query [B, H, T, D] and key, value [B, Hkv, S, D], got query [8, 8, 16], key [8, 8, 16], value [8, 8, 16]}}
  %0 = nn.attention %q, %k, %k {scale = 0.25 : f64} : tensor<8x8x16xf32>, tensor<8x8x16xf32>, tensor<8x8x16xf32>
  return %0 : tensor<8x8x16xf32>
}

// -----

func.func @mask(%q: tensor<2x4x8x16xf32>, %k: tensor<2x2x8x16xf32>, %m: tensor<2x1x8x7xf32>) -> tensor<2x4x8x16xf32> {
  // expected-error @+1 {{mask [2, 1, 8, 7] does not broadcast to [2, 4, 8, 8] [B, H, T, S]}}
  %0 = nn.attention %q, %k, %k mask %m {scale = 0.25 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> mask tensor<2x1x8x7xf32>
  return %0 : tensor<2x4x8x16xf32>
}

// -----

func.func @mask_type(%q: tensor<2x4x8x16xf32>, %k: tensor<2x2x8x16xf32>, %m: tensor<2x1x8x8xf64>) -> tensor<2x4x8x16xf32> {
  // expected-error @+1 {{mask element type 'f64' differs from the query's 'f32'}}
  %0 = nn.attention %q, %k, %k mask %m {scale = 0.25 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> mask tensor<2x1x8x8xf64>
  return %0 : tensor<2x4x8x16xf32>
}

// -----

func.func @prefix(%q: tensor<2x4x8x16xf32>, %k: tensor<2x2x8x16xf32>, %p: tensor<4x3x16xf32>) -> tensor<2x4x8x16xf32> {
  // expected-error @+1 {{prefix_key/prefix_value [4, 3, 16] must be [Hkv=2, P, D=16]}}
  %0 = nn.attention %q, %k, %k prefix %p, %p {scale = 0.25 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> prefix tensor<4x3x16xf32>, tensor<4x3x16xf32>
  return %0 : tensor<2x4x8x16xf32>
}

// -----

func.func @prefix_pair(%q: tensor<2x4x8x16xf32>, %k: tensor<2x2x8x16xf32>, %pk: tensor<2x3x16xf32>, %pv: tensor<2x2x16xf32>) -> tensor<2x4x8x16xf32> {
  // expected-error @+1 {{prefix_key [2, 3, 16] and prefix_value [2, 2, 16] shapes differ}}
  %0 = nn.attention %q, %k, %k prefix %pk, %pv {scale = 0.25 : f64} : tensor<2x4x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> prefix tensor<2x3x16xf32>, tensor<2x2x16xf32>
  return %0 : tensor<2x4x8x16xf32>
}
