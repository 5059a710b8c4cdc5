// RUN: peft-opt %s --split-input-file --peft-insert-interventions | FileCheck %s

// LoReFT f2+l1 on layer 1 of a two-layer residual stream, weights not
// shared: two interventions on layer 1's block output (its last residual
// add), #0 at the first positions, #1 at the last; layer 0 untouched. The
// prompt lengths become an input of @forward.
module attributes {peft.spec = "{peft_type: LOREFT, layers: [1], positions: f2+l1, low_rank_dimension: 2}"} {
  peft.param @embed.weight : tensor<10x4xf32> frozen value dense<1.0> : tensor<10x4xf32>
  peft.param @model.layers.0.mlp.weight : tensor<4x4xf32> frozen value dense<0.5> : tensor<4x4xf32>
  peft.param @model.layers.1.mlp.weight : tensor<4x4xf32> frozen value dense<0.25> : tensor<4x4xf32>
  func.func @forward(%ids: tensor<2x6xi64> {nn.name = "input_ids"}) -> (tensor<2x6x4xf32> {nn.name = "y"}) {
    %e = peft.use @embed.weight : tensor<10x4xf32>
    %h0 = nn.gather %e[%ids] axis 0 : tensor<10x4xf32>, tensor<2x6xi64> -> tensor<2x6x4xf32> loc("/model/embed_tokens/Gather")
    %w0 = peft.use @model.layers.0.mlp.weight : tensor<4x4xf32>
    %m0 = nn.matmul %h0, %w0 : tensor<2x6x4xf32>, tensor<4x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.0/mlp/MatMul")
    %h1 = nn.add %h0, %m0 : tensor<2x6x4xf32>, tensor<2x6x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.0/Add")
    %w1 = peft.use @model.layers.1.mlp.weight : tensor<4x4xf32>
    %m1 = nn.matmul %h1, %w1 : tensor<2x6x4xf32>, tensor<4x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.1/mlp/MatMul")
    %h2 = nn.add %h1, %m1 : tensor<2x6x4xf32>, tensor<2x6x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.1/Add")
    %y = nn.tanh %h2 : tensor<2x6x4xf32>
    return %y : tensor<2x6x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @"layer_1_comp_block_output_unit_pos_nunit_1#0.learned_source.weight" : tensor<2x4xf32> trainable init "kaiming_uniform" {peft.intervention = "layer_1_comp_block_output_unit_pos_nunit_1#0", peft.key = "layer_1_comp_block_output_unit_pos_nunit_1#0.learned_source.weight", peft.method = "loreft"}
// CHECK:       peft.param @"layer_1_comp_block_output_unit_pos_nunit_1#0.learned_source.bias" : tensor<2xf32> trainable init "uniform_fan_in" {peft.init_args = {fan_in = 4 : i64}
// CHECK:       peft.param @"layer_1_comp_block_output_unit_pos_nunit_1#0.rotate_layer.parametrizations.weight.original" : tensor<4x2xf32> trainable init "neg_identity"
// CHECK:       peft.param @"layer_1_comp_block_output_unit_pos_nunit_1#0.rotate_layer.parametrizations.weight.0.base" : tensor<4x4xf32> frozen init "orthogonal"
// CHECK:       peft.param @"layer_1_comp_block_output_unit_pos_nunit_1#1.learned_source.weight"
// CHECK:       func.func @forward(%[[IDS:.*]]: tensor<2x6xi64> {nn.name = "input_ids"}, %[[LEN:.*]]: tensor<2xi64> {nn.name = "prompt_lengths"})
// CHECK-DAG:   %[[LAST:.*]] = peft.reft_positions %[[LEN]] {first_n = 2 : i64, group = "last", last_n = 1 : i64} : tensor<2xi64> -> tensor<2x2xi64>
// CHECK-DAG:   %[[FIRST:.*]] = peft.reft_positions %[[LEN]] {first_n = 2 : i64, group = "first", last_n = 1 : i64} : tensor<2xi64> -> tensor<2x2xi64>
// CHECK:       %[[H1:.*]] = nn.add
// CHECK-NOT:   peft.loreft
// CHECK:       %[[H2:.*]] = nn.add %[[H1]]
// CHECK:       %[[R1:.*]] = peft.householder_orthogonal
// CHECK:       %[[I1:.*]] = peft.loreft %[[H2]], %[[R1]], %{{.*}}, %{{.*}}, %[[LAST]] {peft.intervention = "layer_1_comp_block_output_unit_pos_nunit_1#1"}
// CHECK:       %[[R0:.*]] = peft.householder_orthogonal
// CHECK:       %[[I0:.*]] = peft.loreft %[[I1]], %[[R0]], %{{.*}}, %{{.*}}, %[[FIRST]] {peft.intervention = "layer_1_comp_block_output_unit_pos_nunit_1#0"}
// CHECK:       nn.tanh %[[I0]]

// -----

// NODIREFT on all layers, shared weights: one intervention per layer with
// pyreft's concatenated f1+l1 positions; add_bias creates proj_layer.bias.
// DIREFT's projection is the transposed orthonormal R; it is the second
// intervention on layer 0 (#1), placed after the add, before NODIREFT's.
module attributes {peft.spec = "{methods: [{peft_type: NODIREFT, layers: all, positions: f1+l1, share_weights: true, add_bias: true, prompt_lengths: lens}, {peft_type: DIREFT, layers: [0], positions: l3, prompt_lengths: lens}]}"} {
  peft.param @embed.weight : tensor<10x4xf32> frozen value dense<1.0> : tensor<10x4xf32>
  peft.param @model.layers.0.mlp.weight : tensor<4x4xf32> frozen value dense<0.5> : tensor<4x4xf32>
  peft.param @model.layers.1.mlp.weight : tensor<4x4xf32> frozen value dense<0.25> : tensor<4x4xf32>
  func.func @forward(%ids: tensor<2x6xi64> {nn.name = "input_ids"}, %lens: tensor<2xi64> {nn.name = "lens"}) -> (tensor<2x6x4xf32> {nn.name = "y"}) {
    %e = peft.use @embed.weight : tensor<10x4xf32>
    %h0 = nn.gather %e[%ids] axis 0 : tensor<10x4xf32>, tensor<2x6xi64> -> tensor<2x6x4xf32> loc("/model/embed_tokens/Gather")
    %w0 = peft.use @model.layers.0.mlp.weight : tensor<4x4xf32>
    %m0 = nn.matmul %h0, %w0 : tensor<2x6x4xf32>, tensor<4x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.0/mlp/MatMul")
    %h1 = nn.add %h0, %m0 : tensor<2x6x4xf32>, tensor<2x6x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.0/Add")
    %w1 = peft.use @model.layers.1.mlp.weight : tensor<4x4xf32>
    %m1 = nn.matmul %h1, %w1 : tensor<2x6x4xf32>, tensor<4x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.1/mlp/MatMul")
    %h2 = nn.add %h1, %m1 : tensor<2x6x4xf32>, tensor<2x6x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.1/Add")
    return %h2 : tensor<2x6x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @"layer_0_comp_block_output_unit_pos_nunit_1#0.learned_source.weight" : tensor<1x4xf32> trainable {{.*}}peft.method = "nodireft"
// CHECK:       peft.param @"layer_0_comp_block_output_unit_pos_nunit_1#0.proj_layer.weight" : tensor<1x4xf32> trainable
// CHECK:       peft.param @"layer_0_comp_block_output_unit_pos_nunit_1#0.proj_layer.bias" : tensor<1xf32> trainable
// CHECK:       peft.param @"layer_1_comp_block_output_unit_pos_nunit_1#0.learned_source.weight"
// CHECK:       peft.param @"layer_0_comp_block_output_unit_pos_nunit_1#1.rotate_layer.parametrizations.weight.original" {{.*}}peft.method = "direft"
// CHECK:       func.func @forward(%[[IDS:.*]]: tensor<2x6xi64> {nn.name = "input_ids"}, %[[LEN:.*]]: tensor<2xi64> {nn.name = "lens"})
// CHECK-DAG:   %[[L3:.*]] = peft.reft_positions %[[LEN]] {first_n = 0 : i64, group = "all", last_n = 3 : i64} : tensor<2xi64> -> tensor<2x3xi64>
// CHECK-DAG:   %[[FL:.*]] = peft.reft_positions %[[LEN]] {first_n = 1 : i64, group = "all", last_n = 1 : i64} : tensor<2xi64> -> tensor<2x2xi64>
// CHECK:       %[[H1:.*]] = nn.add
// CHECK:       %[[R:.*]] = peft.householder_orthogonal
// CHECK:       %[[RT:.*]] = nn.transpose %[[R]] perm [1, 0]
// CHECK:       %[[D:.*]] = peft.nodireft %[[H1]], %{{.*}}, %{{.*}}, %[[RT]], %[[L3]]
// CHECK:       %[[N0:.*]] = peft.nodireft %[[D]], {{.*}}, %[[FL]] {peft.intervention = "layer_0_comp_block_output_unit_pos_nunit_1#0"}
// CHECK:       %[[H2:.*]] = nn.add %[[N0]]
// CHECK:       peft.nodireft %[[H2]], {{.*}}, %[[FL]] {peft.intervention = "layer_1_comp_block_output_unit_pos_nunit_1#0"}
