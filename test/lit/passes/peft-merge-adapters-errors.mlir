// RUN: peft-opt %s --split-input-file --verify-diagnostics --peft-merge-adapters

// A weight computed from the function's input cannot be merged.
peft.param @a : tensor<2x8xf32> trainable init "zeros"
peft.param @b : tensor<4x2xf32> trainable init "zeros"
func.func @forward(%x: tensor<3x8xf32>, %w: tensor<8x4xf32>) -> tensor<3x4xf32> {
  %a = peft.use @a : tensor<2x8xf32>
  %b = peft.use @b : tensor<4x2xf32>
  // expected-error @+1 {{peft-merge-adapters: operand computed from the function's inputs}}
  %y = peft.lora %x, %w, %a, %b {scale = 2.0 : f64, weight_layout = "in_out"} : tensor<3x8xf32>, tensor<8x4xf32>, tensor<2x8xf32>, tensor<4x2xf32> -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// -----

// IA3 on an output something else reads too: folding would scale that
// reader as well.
peft.param @wk : tensor<8x4xf32> frozen init "zeros"
peft.param @lk : tensor<4x1xf32> trainable init "ones"
func.func @forward(%x: tensor<3x8xf32>) -> (tensor<3x4xf32>, tensor<3x4xf32>) {
  %wk = peft.use @wk : tensor<8x4xf32>
  %k = nn.matmul %x, %wk {peft.module = "k"} : tensor<3x8xf32>, tensor<8x4xf32> -> tensor<3x4xf32>
  %lk = peft.use @lk : tensor<4x1xf32>
  %lkf = nn.reshape %lk : tensor<4x1xf32> -> tensor<4xf32>
  // expected-error @+1 {{the output of k has other users}}
  %ks = peft.ia3 %k, %lkf {peft.module = "k"} : tensor<3x4xf32>, tensor<4xf32> -> tensor<3x4xf32>
  return %ks, %k : tensor<3x4xf32>, tensor<3x4xf32>
}

// -----

// expected-error @+1 {{peft-merge-adapters: the module has no function @forward}}
module {
}

// -----

// An IA3 that names no module.
func.func @forward(%h: tensor<3x4xf32>, %l: tensor<4xf32>) -> tensor<3x4xf32> {
  // expected-error @+1 {{peft.ia3 names no linear module}}
  %y = peft.ia3 %h, %l : tensor<3x4xf32>, tensor<4xf32> -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}
