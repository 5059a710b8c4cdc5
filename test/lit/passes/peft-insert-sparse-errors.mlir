// RUN: peft-opt %s --split-input-file --verify-diagnostics --peft-insert-sparse

// Magnitude has no order on NaN.
module attributes {peft.spec = "{peft_type: SPARSE, target_modules: [v_proj], density: 0.5}"} {
  peft.param @model.layers.0.self_attn.v_proj.weight : tensor<2x4xf32> frozen value dense<0x7FC00000> : tensor<2x4xf32>
  func.func @forward(%x: tensor<2x4xf32> {nn.name = "x"}) -> (tensor<2x2xf32> {nn.name = "v"}) {
    %wv = peft.use @model.layers.0.self_attn.v_proj.weight : tensor<2x4xf32>
    // expected-error @+1 {{peft-insert-sparse: the weight of model.layers.0.self_attn.v_proj holds NaN; its entries have no magnitude order (use selection: random)}}
    %v = nn.matmul %x, %wv {peft.module = "model.layers.0.self_attn.v_proj", transpose_rhs = true} : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x2xf32>
    return %v : tensor<2x2xf32>
  }
}

// -----

// A target that matches no module.
// expected-error @+1 {{'target_modules' entry 'k_proj' matches no module of the model; did you mean 'v_proj'?}}
module attributes {peft.spec = "{peft_type: SPARSE, target_modules: [k_proj], density: 0.5}"} {
  peft.param @model.layers.0.self_attn.v_proj.weight : tensor<2x4xf32> frozen value dense<1.0> : tensor<2x4xf32>
  func.func @forward(%x: tensor<2x4xf32> {nn.name = "x"}) -> (tensor<2x2xf32> {nn.name = "v"}) {
    %wv = peft.use @model.layers.0.self_attn.v_proj.weight : tensor<2x4xf32>
    %v = nn.matmul %x, %wv {transpose_rhs = true} : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x2xf32> loc("/model/layers.0/self_attn/v_proj/MatMul")
    return %v : tensor<2x2xf32>
  }
}
