// RUN: peft-opt %s --split-input-file --peft-insert-prefix-tuning | FileCheck %s

// Two raised attention layers (2 query heads over 1 KV head of size 2, T = 3)
// with LLaMA's rotary path: positions 0..2 cast to float, times inv_freq,
// cos/sin. The same 0..2 constant also builds the causal mask (the importer
// shares it), which must keep 0..2. P = 2: the table prompt_embeddings
// [P, L*2*token_dim] = [2, 8] is viewed as [P, 2L, Hkv, D] = [2, 4, 1, 2],
// permuted to [2L, Hkv, P, D]; layer l reads planes 2l (keys) and 2l+1
// (values); the rotary positions become 2..4.
module attributes {peft.spec = "{peft_type: PREFIX_TUNING, num_virtual_tokens: 2, token_dim: 2, num_layers: 2, num_attention_heads: 1}"} {
  func.func @forward(%q: tensor<1x2x3x2xf32>, %k: tensor<1x1x3x2xf32>, %v: tensor<1x1x3x2xf32>) -> (tensor<1x2x3x2xf32>, tensor<1x3x2xf32>, tensor<3x3xi1>) {
    %pos = nn.constant dense<[[[0, 1, 2]]]> : tensor<1x1x3xi64>
    %inv = nn.constant dense<[[[1.0], [0.5]]]> : tensor<1x2x1xf32>
    %posf = nn.cast %pos : tensor<1x1x3xi64> -> tensor<1x1x3xf32>
    %freqs = nn.matmul %inv, %posf : tensor<1x2x1xf32>, tensor<1x1x3xf32> -> tensor<1x2x3xf32>
    %t = nn.transpose %freqs perm [0, 2, 1] : tensor<1x2x3xf32> -> tensor<1x3x2xf32>
    %cos = nn.cos %t : tensor<1x3x2xf32>
    %row = nn.reshape %pos : tensor<1x1x3xi64> -> tensor<3x1xi64>
    %col = nn.reshape %pos : tensor<1x1x3xi64> -> tensor<1x3xi64>
    %causal = nn.greater %col, %row : tensor<1x3xi64>, tensor<3x1xi64> -> tensor<3x3xi1>
    %a0 = nn.attention %q, %k, %v {scale = 0.5 : f64} : tensor<1x2x3x2xf32>, tensor<1x1x3x2xf32>, tensor<1x1x3x2xf32>
    %a1 = nn.attention %a0, %k, %v {scale = 0.5 : f64} : tensor<1x2x3x2xf32>, tensor<1x1x3x2xf32>, tensor<1x1x3x2xf32>
    return %a1, %cos, %causal : tensor<1x2x3x2xf32>, tensor<1x3x2xf32>, tensor<3x3xi1>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @prompt_embeddings : tensor<2x8xf32> trainable init "normal" {peft.key = "prompt_embeddings", peft.method = "prefix_tuning"}
// CHECK:       func.func @forward({{.*}} attributes {peft.prefix_tokens = 2 : i64}
// CHECK:       %[[TABLE:.*]] = peft.use @prompt_embeddings : tensor<2x8xf32>
// CHECK:       %[[VIEW:.*]] = nn.reshape %[[TABLE]] : tensor<2x8xf32> -> tensor<2x4x1x2xf32>
// CHECK:       %[[PLANES:.*]] = nn.transpose %[[VIEW]] perm [1, 2, 0, 3] : tensor<2x4x1x2xf32> -> tensor<4x1x2x2xf32>
// CHECK:       %[[K0S:.*]] = nn.slice %[[PLANES]] starts [0, 0, 0, 0] sizes [1, 1, 2, 2] steps [1, 1, 1, 1]
// CHECK:       %[[K0:.*]] = nn.reshape %[[K0S]] : tensor<1x1x2x2xf32> -> tensor<1x2x2xf32>
// CHECK:       %[[V0S:.*]] = nn.slice %[[PLANES]] starts [1, 0, 0, 0]
// CHECK:       %[[V0:.*]] = nn.reshape %[[V0S]]
// CHECK:       %[[K1S:.*]] = nn.slice %[[PLANES]] starts [2, 0, 0, 0]
// CHECK:       %[[K1:.*]] = nn.reshape %[[K1S]]
// CHECK:       %[[V1S:.*]] = nn.slice %[[PLANES]] starts [3, 0, 0, 0]
// CHECK:       %[[V1:.*]] = nn.reshape %[[V1S]]
// CHECK:       %[[POS:.*]] = nn.constant dense<{{\[\[\[}}0, 1, 2]]]> : tensor<1x1x3xi64>
// CHECK:       %[[SHIFTED:.*]] = nn.constant dense<{{\[\[\[}}2, 3, 4]]]> : tensor<1x1x3xi64>
// CHECK:       nn.cast %[[SHIFTED]] : tensor<1x1x3xi64> -> tensor<1x1x3xf32>
// CHECK:       nn.reshape %[[POS]] : tensor<1x1x3xi64> -> tensor<3x1xi64>
// CHECK:       nn.reshape %[[POS]] : tensor<1x1x3xi64> -> tensor<1x3xi64>
// CHECK:       %[[A0:.*]] = nn.attention %{{.*}}, %{{.*}}, %{{.*}} prefix %[[K0]], %[[V0]] {scale = 5.000000e-01 : f64} : tensor<1x2x3x2xf32>, tensor<1x1x3x2xf32>, tensor<1x1x3x2xf32>{{,?}} prefix tensor<1x2x2xf32>, tensor<1x2x2xf32>
// CHECK:       nn.attention %[[A0]], %{{.*}}, %{{.*}} prefix %[[K1]], %[[V1]]
// CHECK-NOT:   func.func @prefix_prompt_embeddings

// -----

// prefix_projection: PEFT's PrefixEncoder, Embedding(P, token_dim) ->
// Linear(token_dim, encoder_hidden_size) -> Tanh -> Linear(.., L*2*token_dim),
// the Linear weights [out, in] read transposed and their biases initialised
// as nn.Linear does (U(±1/sqrt(fan_in))). The encoder runs once at the top of
// the function; @prefix_prompt_embeddings computes what PEFT saves. GPT-2's
// learned positions: the lookup of wpe at 0..2 reads rows 3..5.
module attributes {peft.spec = "{peft_type: PREFIX_TUNING, num_virtual_tokens: 3, prefix_projection: true, encoder_hidden_size: 5}"} {
  peft.param @transformer.wpe.weight : tensor<8x2xf32> frozen value dense<1.0> : tensor<8x2xf32>
  func.func @forward(%q: tensor<1x2x3x2xf32>, %k: tensor<1x1x3x2xf32>, %v: tensor<1x1x3x2xf32>) -> (tensor<1x2x3x2xf32>, tensor<1x3x2xf32>) {
    %pos = nn.constant dense<[0, 1, 2]> : tensor<3xi64>
    %row = nn.reshape %pos : tensor<3xi64> -> tensor<1x3xi64>
    %wpe = peft.use @transformer.wpe.weight : tensor<8x2xf32>
    %p = nn.gather %wpe[%row] axis 0 : tensor<8x2xf32>, tensor<1x3xi64> -> tensor<1x3x2xf32>
    %a0 = nn.attention %q, %k, %v {scale = 0.5 : f64} : tensor<1x2x3x2xf32>, tensor<1x1x3x2xf32>, tensor<1x1x3x2xf32>
    return %a0, %p : tensor<1x2x3x2xf32>, tensor<1x3x2xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @prompt_encoder.embedding.weight : tensor<3x2xf32> trainable init "normal" {peft.key = "prompt_encoder.embedding.weight", peft.method = "prefix_tuning"}
// CHECK:       peft.param @prompt_encoder.transform.0.weight : tensor<5x2xf32> trainable init "kaiming_uniform"
// CHECK:       peft.param @prompt_encoder.transform.0.bias : tensor<5xf32> trainable init "uniform_fan_in" {peft.init_args = {fan_in = 2 : i64}
// CHECK:       peft.param @prompt_encoder.transform.2.weight : tensor<4x5xf32> trainable init "kaiming_uniform"
// CHECK:       peft.param @prompt_encoder.transform.2.bias : tensor<4xf32> trainable init "uniform_fan_in" {peft.init_args = {fan_in = 5 : i64}
// CHECK:       func.func @forward(
// CHECK:       %[[E:.*]] = peft.use @prompt_encoder.embedding.weight : tensor<3x2xf32>
// CHECK:       %[[W0:.*]] = peft.use @prompt_encoder.transform.0.weight : tensor<5x2xf32>
// CHECK:       %[[H:.*]] = nn.matmul %[[E]], %[[W0]] {transpose_rhs = true} : tensor<3x2xf32>, tensor<5x2xf32> -> tensor<3x5xf32>
// CHECK:       %[[B0:.*]] = peft.use @prompt_encoder.transform.0.bias : tensor<5xf32>
// CHECK:       %[[HB:.*]] = nn.add %[[H]], %[[B0]]
// CHECK:       %[[T:.*]] = nn.tanh %[[HB]] : tensor<3x5xf32>
// CHECK:       %[[W2:.*]] = peft.use @prompt_encoder.transform.2.weight : tensor<4x5xf32>
// CHECK:       nn.matmul %[[T]], %[[W2]] {transpose_rhs = true} : tensor<3x5xf32>, tensor<4x5xf32> -> tensor<3x4xf32>
// CHECK:       peft.use @prompt_encoder.transform.2.bias
// CHECK:       %[[TABLE:.*]] = nn.add
// CHECK:       nn.reshape %[[TABLE]] : tensor<3x4xf32> -> tensor<3x2x1x2xf32>
// CHECK:       %[[SHIFTED:.*]] = nn.constant dense<[3, 4, 5]> : tensor<3xi64>
// CHECK:       nn.reshape %[[SHIFTED]] : tensor<3xi64> -> tensor<1x3xi64>
// CHECK:       nn.attention {{.*}} prefix {{.*}} : tensor<1x2x3x2xf32>, tensor<1x1x3x2xf32>, tensor<1x1x3x2xf32>{{,?}} prefix tensor<1x3x2xf32>, tensor<1x3x2xf32>
// CHECK:       func.func @prefix_prompt_embeddings() -> tensor<3x4xf32> attributes {peft.saved_key = "prompt_embeddings"}
// CHECK:       nn.tanh
// CHECK:       return %{{.*}} : tensor<3x4xf32>
