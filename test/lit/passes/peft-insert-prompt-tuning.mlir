// RUN: peft-opt %s --split-input-file --peft-insert-adapters | FileCheck %s
// RUN: peft-opt %s --split-input-file --peft-insert-adapters --peft-freeze --peft-build-loss | FileCheck %s --check-prefix=LOSS

// Prompt tuning extends the word embedding with P = 2 trainable rows and
// prefixes every example: the model was imported at T + P = 5 positions, the
// function now takes the data's T = 3 and puts the virtual ids V.. V+P-1 =
// 10, 11 (and mask ones) in front, so the lookup reads the appended rows.
module attributes {peft.spec = "{peft_type: PROMPT_TUNING, num_virtual_tokens: 2, prompt_tuning_init: RANDOM, token_dim: 4, training: {inputs: {input_ids: [2, 3], attention_mask: [2, 3], labels: [2, 3]}}}"} {
  peft.param @model.embed_tokens.weight : tensor<10x4xf32> frozen value dense<1.0> : tensor<10x4xf32>
  func.func @forward(%ids: tensor<2x5xi64> {nn.name = "input_ids"}, %mask: tensor<2x5xi64> {nn.name = "attention_mask"}) -> (tensor<2x5x4xf32> {nn.name = "logits"}) {
    %table = peft.use @model.embed_tokens.weight : tensor<10x4xf32>
    %h = nn.gather %table[%ids] axis 0 : tensor<10x4xf32>, tensor<2x5xi64> -> tensor<2x5x4xf32>
    %m = nn.cast %mask : tensor<2x5xi64> -> tensor<2x5xf32>
    %m3 = nn.reshape %m : tensor<2x5xf32> -> tensor<2x5x1xf32>
    %y = nn.mul %h, %m3 : tensor<2x5x4xf32>, tensor<2x5x1xf32> -> tensor<2x5x4xf32>
    return %y : tensor<2x5x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @model.embed_tokens.weight : tensor<10x4xf32> frozen
// CHECK:       peft.param @prompt_embeddings : tensor<2x4xf32> trainable init "normal" {peft.key = "prompt_embeddings", peft.method = "prompt_tuning"}
// CHECK:       func.func @forward(%[[IDS:.*]]: tensor<2x3xi64> {nn.name = "input_ids"}, %[[MASK:.*]]: tensor<2x3xi64> {nn.name = "attention_mask"}) -> (tensor<2x5x4xf32> {nn.name = "logits"}) attributes {peft.virtual_tokens = 2 : i64}
// CHECK-DAG:   %[[ONES:.*]] = nn.constant dense<1> : tensor<2x2xi64>
// CHECK-DAG:   %[[FULLMASK:.*]] = nn.concat %[[ONES]], %[[MASK]] axis 1 : tensor<2x2xi64>, tensor<2x3xi64> -> tensor<2x5xi64>
// CHECK-DAG:   %[[VIRTUAL:.*]] = nn.constant dense<{{\[\[}}10, 11], [10, 11]]> : tensor<2x2xi64>
// CHECK-DAG:   %[[FULLIDS:.*]] = nn.concat %[[VIRTUAL]], %[[IDS]] axis 1 : tensor<2x2xi64>, tensor<2x3xi64> -> tensor<2x5xi64>
// CHECK:       %[[TABLE:.*]] = peft.use @model.embed_tokens.weight : tensor<10x4xf32>
// CHECK:       %[[ROWS:.*]] = peft.use @prompt_embeddings : tensor<2x4xf32>
// CHECK:       %[[EXTENDED:.*]] = nn.concat %[[TABLE]], %[[ROWS]] axis 0 : tensor<10x4xf32>, tensor<2x4xf32> -> tensor<12x4xf32>
// CHECK:       nn.gather %[[EXTENDED]][%[[FULLIDS]]] axis 0 : tensor<12x4xf32>, tensor<2x5xi64> -> tensor<2x5x4xf32>
// CHECK:       nn.cast %[[FULLMASK]]

// The loss reads the data's [2, 3] labels with P ignore_index in front.
// LOSS-LABEL: func.func @loss(
// LOSS-SAME:     %[[LABELS:[^:]*]]: tensor<2x3xi64> {nn.name = "labels"}
// LOSS:        %[[IGNORE:.*]] = nn.constant dense<-100> : tensor<2x2xi64>
// LOSS:        %[[FULL:.*]] = nn.concat %[[IGNORE]], %[[LABELS]] axis 1 : tensor<2x2xi64>, tensor<2x3xi64> -> tensor<2x5xi64>
// LOSS:        peft.cross_entropy %{{.*}}, %[[FULL]]

// -----

// TEXT init: rows of the word embedding for the given token ids, repeated
// to cover the P virtual tokens (PEFT's init from prompt_tuning_init_text).
module attributes {peft.spec = "{peft_type: PROMPT_TUNING, num_virtual_tokens: 3, prompt_tuning_init: TEXT, prompt_tuning_init_token_ids: [7, 2]}"} {
  peft.param @model.embed_tokens.weight : tensor<10x4xf32> frozen value dense<1.0> : tensor<10x4xf32>
  func.func @forward(%ids: tensor<1x5xi64> {nn.name = "input_ids"}) -> (tensor<1x5x4xf32> {nn.name = "logits"}) {
    %table = peft.use @model.embed_tokens.weight : tensor<10x4xf32>
    %h = nn.gather %table[%ids] axis 0 : tensor<10x4xf32>, tensor<1x5xi64> -> tensor<1x5x4xf32>
    return %h : tensor<1x5x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @prompt_embeddings : tensor<3x4xf32> trainable init "embedding_rows" {peft.init_args = {rows = array<i64: 7, 2, 7>, table = @model.embed_tokens.weight}, peft.key = "prompt_embeddings", peft.method = "prompt_tuning"}
// CHECK:       func.func @forward(%{{.*}}: tensor<1x2xi64> {nn.name = "input_ids"})
// CHECK:       nn.constant dense<{{\[\[}}10, 11, 12]]> : tensor<1x3xi64>
