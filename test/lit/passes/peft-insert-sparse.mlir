// RUN: peft-opt %s --split-input-file --peft-insert-sparse | FileCheck %s

// Magnitude selection, density 0.3 on q_proj and v_proj. q_proj is stored
// as TorchScript exports it, [in, out] = [4, 3] read as x·W, so indices
// count in PyTorch's [out, in] = [3, 4] transpose (`transposed`):
//   |Wᵀ| row 0: 0.1 0.5 0.05 0.0 | row 1: 0.9 0.2 0.4 0.6 |
//        row 2: 0.3 0.5 0.9 0.1
// k = ceil(0.3 · 12) = 4: 0.9 at positions 4 and 10, 0.6 at 7, then 0.5 at
// 1 and 9, a tie the lower position wins: [1, 4, 7, 10].
// v_proj is stored [out, in] = [2, 4] (x·Wᵀ): k = ceil(0.3 · 8) = 3 of
//   |W| 0.7 0.1 0.2 0.7 | 0.3 0.8 0.1 0.05  ->  [0, 3, 5].
module attributes {peft.spec = "{peft_type: SPARSE, target_modules: [q_proj, v_proj], density: 0.3}"} {
  peft.param @"onnx::MatMul_1" : tensor<4x3xf32> frozen value dense<[[0.1, -0.9, 0.3], [0.5, 0.2, -0.5], [0.05, 0.4, 0.9], [0.0, 0.6, -0.1]]> : tensor<4x3xf32>
  peft.param @model.layers.0.self_attn.v_proj.weight : tensor<2x4xf32> frozen value dense<[[0.7, -0.1, 0.2, -0.7], [0.3, 0.8, -0.1, 0.05]]> : tensor<2x4xf32>
  func.func @forward(%x: tensor<2x4xf32> {nn.name = "x"}) -> (tensor<2x3xf32> {nn.name = "q"}, tensor<2x2xf32> {nn.name = "v"}) {
    %wq = peft.use @"onnx::MatMul_1" : tensor<4x3xf32>
    %q = nn.matmul %x, %wq : tensor<2x4xf32>, tensor<4x3xf32> -> tensor<2x3xf32> loc("/model/layers.0/self_attn/q_proj/MatMul")
    %wv = peft.use @model.layers.0.self_attn.v_proj.weight : tensor<2x4xf32>
    %v = nn.matmul %x, %wv {transpose_rhs = true} : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x2xf32> loc("/model/layers.0/self_attn/v_proj/MatMul")
    return %q, %v : tensor<2x3xf32>, tensor<2x2xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @model.layers.0.self_attn.q_proj.sparse_indices : tensor<4xi64> frozen value dense<[1, 4, 7, 10]> : tensor<4xi64> {peft.key = "model.layers.0.self_attn.q_proj.sparse_indices"}
// CHECK-NEXT:  peft.param @model.layers.0.self_attn.q_proj.sparse_delta : tensor<4xf32> trainable init "zeros" {peft.key = "model.layers.0.self_attn.q_proj.sparse_delta", peft.method = "sparse"}
// CHECK-NEXT:  peft.param @model.layers.0.self_attn.v_proj.sparse_indices : tensor<3xi64> frozen value dense<[0, 3, 5]> : tensor<3xi64>
// CHECK-NEXT:  peft.param @model.layers.0.self_attn.v_proj.sparse_delta : tensor<3xf32> trainable init "zeros"
// CHECK:       func.func @forward
// CHECK:       %[[W:.*]] = peft.use @"onnx::MatMul_1" : tensor<4x3xf32>
// CHECK-NEXT:  %[[I:.*]] = peft.use @model.layers.0.self_attn.q_proj.sparse_indices : tensor<4xi64>
// CHECK-NEXT:  %[[D:.*]] = peft.use @model.layers.0.self_attn.q_proj.sparse_delta : tensor<4xf32>
// CHECK-NEXT:  %[[S:.*]] = peft.sparse_delta %[[W]], %[[I]], %[[D]] {peft.module = "model.layers.0.self_attn.q_proj", transposed} : tensor<4x3xf32>, tensor<4xi64>, tensor<4xf32>
// CHECK-NEXT:  nn.matmul %{{.*}}, %[[S]] : tensor<2x4xf32>, tensor<4x3xf32> -> tensor<2x3xf32>
// CHECK:       %[[V:.*]] = peft.sparse_delta %{{.*}}, %{{.*}}, %{{.*}} {peft.module = "model.layers.0.self_attn.v_proj"} : tensor<2x4xf32>, tensor<3xi64>, tensor<3xf32>
// CHECK-NEXT:  nn.matmul %{{.*}}, %[[V]] {transpose_rhs = true}

// -----

// Random selection: k = ceil(0.5 · 8) = 4 entries with the smallest
// Philox draws of seed 7 and the module's stream (FNV-1a of its path);
// the values of the weight play no part (NaN is fine here). The indices are
// pinned: every machine draws the same ones.
module attributes {peft.spec = "{peft_type: SPARSE, target_modules: [v_proj], density: 0.5, selection: random, seed: 7}"} {
  peft.param @model.layers.0.self_attn.v_proj.weight : tensor<2x4xf32> frozen value dense<0x7FC00000> : tensor<2x4xf32>
  func.func @forward(%x: tensor<2x4xf32> {nn.name = "x"}) -> (tensor<2x2xf32> {nn.name = "v"}) {
    %wv = peft.use @model.layers.0.self_attn.v_proj.weight : tensor<2x4xf32>
    %v = nn.matmul %x, %wv {transpose_rhs = true} : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x2xf32> loc("/model/layers.0/self_attn/v_proj/MatMul")
    return %v : tensor<2x2xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @model.layers.0.self_attn.v_proj.sparse_indices : tensor<4xi64> frozen value dense<[0, 2, 3, 6]> : tensor<4xi64>
// CHECK:       peft.sparse_delta {{.*}} : tensor<2x4xf32>, tensor<4xi64>, tensor<4xf32>
