// RUN: peft-opt %s --split-input-file --verify-diagnostics --peft-insert-adapters

// A bottleneck adapter goes where the projection's output joins the
// residual stream; without that add the pass names the module.
module attributes {peft.spec = "{peft_type: SEQ_BN}"} {
  peft.param @"onnx::MatMul_9" : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  func.func @forward(%h: tensor<2x3x4xf32> {nn.name = "h"}) -> (tensor<2x3x4xf32> {nn.name = "y"}) {
    %w = peft.use @"onnx::MatMul_9" : tensor<4x4xf32>
    // expected-error @below {{peft-insert-adapters: a bottleneck adapter goes where the output of model.layers.0.mlp.down_proj is added to the residual stream, but its output is not used by one nn.add (a pre-norm decoder layer is expected)}}
    %m = nn.matmul %h, %w {peft.module = "model.layers.0.mlp.down_proj"} : tensor<2x3x4xf32>, tensor<4x4xf32> -> tensor<2x3x4xf32>
    return %m : tensor<2x3x4xf32>
  }
}

// -----

// double_seq_bn needs the attention output projection too.
// expected-error @below {{peft-insert-adapters: the bottleneck adapter (attention_adapters) goes after the attention output projections (modules ending in self_attn.o_proj, attn.c_proj), and the model has none}}
module attributes {peft.spec = "{peft_type: DOUBLE_SEQ_BN}"} {
  peft.param @"onnx::MatMul_9" : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  func.func @forward(%r: tensor<2x3x4xf32> {nn.name = "r"}, %h: tensor<2x3x4xf32> {nn.name = "h"}) -> (tensor<2x3x4xf32> {nn.name = "y"}) {
    %w = peft.use @"onnx::MatMul_9" : tensor<4x4xf32>
    %m = nn.matmul %h, %w : tensor<2x3x4xf32>, tensor<4x4xf32> -> tensor<2x3x4xf32> loc("/model/layers.0/mlp/down_proj/MatMul")
    %y = nn.add %r, %m : tensor<2x3x4xf32>, tensor<2x3x4xf32> -> tensor<2x3x4xf32>
    return %y : tensor<2x3x4xf32>
  }
}

// -----

// token_dim must be the embedding's width.
// expected-error @below {{peft-insert-adapters: 'token_dim' is 8 but the word embedding model.embed_tokens has 4 features}}
module attributes {peft.spec = "{peft_type: PROMPT_TUNING, num_virtual_tokens: 2, token_dim: 8}"} {
  peft.param @model.embed_tokens.weight : tensor<10x4xf32> frozen value dense<1.0> : tensor<10x4xf32>
  func.func @forward(%ids: tensor<2x5xi64> {nn.name = "input_ids"}) -> (tensor<2x5x4xf32> {nn.name = "logits"}) {
    %table = peft.use @model.embed_tokens.weight : tensor<10x4xf32>
    %h = nn.gather %table[%ids] axis 0 : tensor<10x4xf32>, tensor<2x5xi64> -> tensor<2x5x4xf32>
    return %h : tensor<2x5x4xf32>
  }
}

// -----

// The model was imported without room for the virtual tokens.
module attributes {peft.spec = "{peft_type: PROMPT_TUNING, num_virtual_tokens: 5}"} {
  peft.param @model.embed_tokens.weight : tensor<10x4xf32> frozen value dense<1.0> : tensor<10x4xf32>
  // expected-error @below {{peft-insert-adapters: prompt tuning prefixes 'input_ids' with 5 virtual tokens along axis 1, but it is 'tensor<2x5xi64>' (import it at the data's sequence length + 5)}}
  func.func @forward(%ids: tensor<2x5xi64> {nn.name = "input_ids"}) -> (tensor<2x5x4xf32> {nn.name = "logits"}) {
    %table = peft.use @model.embed_tokens.weight : tensor<10x4xf32>
    %h = nn.gather %table[%ids] axis 0 : tensor<10x4xf32>, tensor<2x5xi64> -> tensor<2x5x4xf32>
    return %h : tensor<2x5x4xf32>
  }
}

// -----

// TEXT init ids must be in the vocabulary.
// expected-error @below {{peft-insert-adapters: 'prompt_tuning_init_token_ids' has id 12, outside the vocabulary of 10}}
module attributes {peft.spec = "{peft_type: PROMPT_TUNING, num_virtual_tokens: 2, prompt_tuning_init: TEXT, prompt_tuning_init_token_ids: [3, 12]}"} {
  peft.param @model.embed_tokens.weight : tensor<10x4xf32> frozen value dense<1.0> : tensor<10x4xf32>
  func.func @forward(%ids: tensor<2x5xi64> {nn.name = "input_ids"}) -> (tensor<2x5x4xf32> {nn.name = "logits"}) {
    %table = peft.use @model.embed_tokens.weight : tensor<10x4xf32>
    %h = nn.gather %table[%ids] axis 0 : tensor<10x4xf32>, tensor<2x5xi64> -> tensor<2x5x4xf32>
    return %h : tensor<2x5x4xf32>
  }
}
