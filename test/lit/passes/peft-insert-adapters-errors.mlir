// RUN: peft-opt %s --split-input-file --verify-diagnostics --peft-insert-adapters

// The pass needs the spec on the module.
// expected-error @below {{peft-insert-adapters: the module carries no `peft.spec` attribute}}
module {
  func.func @forward(%x: tensor<2xf32>) -> tensor<2xf32> {
    return %x : tensor<2xf32>
  }
}

// -----

// expected-error @below {{invalid `peft.spec` attribute: peft.spec:1:25: error: unknown key 'lora_aplha' in a LORA method; did you mean 'lora_alpha'?}}
module attributes {peft.spec = "{peft_type: LORA, r: 2, lora_aplha: 4, target_modules: [q_proj]}"} {
  func.func @forward(%x: tensor<2xf32>) -> tensor<2xf32> {
    return %x : tensor<2xf32>
  }
}

// -----

// A target that names no module lists the nearest ones.
// expected-error @below {{'target_modules' entry 'q_prj' matches no module of the model; did you mean 'q_proj'?}}
module attributes {peft.spec = "{peft_type: LORA, target_modules: [q_prj]}"} {
  peft.param @q_proj.weight : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
    %w = peft.use @q_proj.weight : tensor<4x4xf32>
    %y = nn.matmul %x, %w : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
    return %y : tensor<2x4xf32>
  }
}

// -----

// Running the pass on an adapted module: a module takes one adapter.
module attributes {peft.spec = "{peft_type: LORA, r: 1, target_modules: [q_proj]}"} {
  peft.param @q_proj.weight : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  peft.param @base_model.model.q_proj.lora_A.weight : tensor<1x4xf32> trainable init "kaiming_uniform" {peft.key = "base_model.model.q_proj.lora_A.weight", peft.method = "lora"}
  peft.param @base_model.model.q_proj.lora_B.weight : tensor<4x1xf32> trainable init "zeros" {peft.key = "base_model.model.q_proj.lora_B.weight", peft.method = "lora"}
  func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
    %w = peft.use @q_proj.weight : tensor<4x4xf32>
    %a = peft.use @base_model.model.q_proj.lora_A.weight : tensor<1x4xf32>
    %b = peft.use @base_model.model.q_proj.lora_B.weight : tensor<4x1xf32>
    // expected-error @below {{peft-insert-adapters: q_proj is a peft.lora already; a module takes one adapter}}
    %y = peft.lora %x, %w, %a, %b {scale = 8.0 : f64, weight_layout = "out_in"} : tensor<2x4xf32>, tensor<4x4xf32>, tensor<1x4xf32>, tensor<4x1xf32> -> tensor<2x4xf32>
    return %y : tensor<2x4xf32>
  }
}
