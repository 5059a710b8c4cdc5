// RUN: peft-opt %s --split-input-file --verify-diagnostics --peft-insert-prefix-tuning

// Attention that peft-raise-attention cannot find (here: none at all).
module attributes {peft.spec = "{peft_type: PREFIX_TUNING, num_virtual_tokens: 2}"} {
  // expected-error @+1 {{peft-insert-prefix-tuning: @forward has no attention that peft-raise-attention recognises (QK^T * scale + mask -> softmax -> * V); prefix tuning concatenates its keys and values inside nn.attention}}
  func.func @forward(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
    return %x : tensor<2x3xf32>
  }
}

// -----

// A written token_dim must be the model's key/value width (Hkv x D = 2).
module attributes {peft.spec = "{peft_type: PREFIX_TUNING, num_virtual_tokens: 2, token_dim: 32}"} {
  // expected-error @+1 {{peft-insert-prefix-tuning: 'token_dim' is 32 but the model has 2 key/value features per position (KV heads x head size)}}
  func.func @forward(%q: tensor<1x2x3x2xf32>, %k: tensor<1x1x3x2xf32>, %v: tensor<1x1x3x2xf32>) -> tensor<1x2x3x2xf32> {
    %a = nn.attention %q, %k, %v {scale = 0.5 : f64} : tensor<1x2x3x2xf32>, tensor<1x1x3x2xf32>, tensor<1x1x3x2xf32>
    return %a : tensor<1x2x3x2xf32>
  }
}

// -----

// num_layers must count the model's attention layers.
module attributes {peft.spec = "{peft_type: PREFIX_TUNING, num_virtual_tokens: 2, num_layers: 12}"} {
  // expected-error @+1 {{peft-insert-prefix-tuning: 'num_layers' is 12 but the model has 1 attention layers (nn.attention ops)}}
  func.func @forward(%q: tensor<1x2x3x2xf32>, %k: tensor<1x1x3x2xf32>, %v: tensor<1x1x3x2xf32>) -> tensor<1x2x3x2xf32> {
    %a = nn.attention %q, %k, %v {scale = 0.5 : f64} : tensor<1x2x3x2xf32>, tensor<1x1x3x2xf32>, tensor<1x1x3x2xf32>
    return %a : tensor<1x2x3x2xf32>
  }
}

// -----

// Without position ids peftc cannot number the tokens from P as transformers
// does after a prefix.
module attributes {peft.spec = "{peft_type: PREFIX_TUNING, num_virtual_tokens: 2}"} {
  // expected-error @+1 {{peft-insert-prefix-tuning: found no position ids to start at 2}}
  func.func @forward(%q: tensor<1x2x3x2xf32>, %k: tensor<1x1x3x2xf32>, %v: tensor<1x1x3x2xf32>) -> tensor<1x2x3x2xf32> {
    %a = nn.attention %q, %k, %v {scale = 0.5 : f64} : tensor<1x2x3x2xf32>, tensor<1x1x3x2xf32>, tensor<1x1x3x2xf32>
    return %a : tensor<1x2x3x2xf32>
  }
}

// -----

// A learned position table needs rows for positions P..P+T-1.
module attributes {peft.spec = "{peft_type: PREFIX_TUNING, num_virtual_tokens: 2}"} {
  peft.param @wpe : tensor<4x2xf32> frozen value dense<1.0> : tensor<4x2xf32>
  func.func @forward(%q: tensor<1x2x3x2xf32>, %k: tensor<1x1x3x2xf32>, %v: tensor<1x1x3x2xf32>) -> (tensor<1x2x3x2xf32>, tensor<3x2xf32>) {
    %pos = nn.constant dense<[0, 1, 2]> : tensor<3xi64>
    %w = peft.use @wpe : tensor<4x2xf32>
    // expected-error @+1 {{peft-insert-prefix-tuning: the position-embedding table has 4 rows; 2 prefix positions and 3 tokens need 5}}
    %p = nn.gather %w[%pos] axis 0 : tensor<4x2xf32>, tensor<3xi64> -> tensor<3x2xf32>
    %a = nn.attention %q, %k, %v {scale = 0.5 : f64} : tensor<1x2x3x2xf32>, tensor<1x1x3x2xf32>, tensor<1x1x3x2xf32>
    return %a, %p : tensor<1x2x3x2xf32>, tensor<3x2xf32>
  }
}
