// RUN: peft-opt %s --split-input-file --peft-insert-interventions | FileCheck %s

// pyreft's `dropout`: every intervention returns self.dropout(output) with
// output = h + delta, the whole intervened row (base included), and pyvene
// writes back only the rows at the positions. So the dropout lands on the
// intervention's result and a where keeps it on the selected rows only; all
// other rows stay h. The mask is peft.dropout's: the spec's seed, the step
// counter (a new first argument marked peft.step) and a stream per
// intervention, numbered after the LoRA dropout the module already has.
module attributes {peft.spec = "{methods: [{peft_type: LOREFT, layers: [0, 1], positions: l2, low_rank_dimension: 2, dropout: 0.05}], training: {seed: 11}}"} {
  peft.param @embed.weight : tensor<10x4xf32> frozen value dense<1.0> : tensor<10x4xf32>
  peft.param @model.layers.0.mlp.weight : tensor<4x4xf32> frozen value dense<0.5> : tensor<4x4xf32>
  peft.param @model.layers.1.mlp.weight : tensor<4x4xf32> frozen value dense<0.25> : tensor<4x4xf32>
  func.func @forward(%step: tensor<i64> {peft.step}, %ids: tensor<2x6xi64> {nn.name = "input_ids"}) -> (tensor<2x6x4xf32> {nn.name = "y"}) {
    %e = peft.use @embed.weight : tensor<10x4xf32>
    %h0 = nn.gather %e[%ids] axis 0 : tensor<10x4xf32>, tensor<2x6xi64> -> tensor<2x6x4xf32> loc("/model/embed_tokens/Gather")
    %x = nn.tanh %h0 : tensor<2x6x4xf32>
    %xd = peft.dropout %x, %step {p = 0.1 : f64, seed = 11 : i64, stream = 3 : i64} : tensor<2x6x4xf32>, tensor<i64>
    %w0 = peft.use @model.layers.0.mlp.weight : tensor<4x4xf32>
    %m0 = nn.matmul %xd, %w0 : tensor<2x6x4xf32>, tensor<4x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.0/mlp/MatMul")
    %h1 = nn.add %h0, %m0 : tensor<2x6x4xf32>, tensor<2x6x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.0/Add")
    %w1 = peft.use @model.layers.1.mlp.weight : tensor<4x4xf32>
    %m1 = nn.matmul %h1, %w1 : tensor<2x6x4xf32>, tensor<4x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.1/mlp/MatMul")
    %h2 = nn.add %h1, %m1 : tensor<2x6x4xf32>, tensor<2x6x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.1/Add")
    return %h2 : tensor<2x6x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       func.func @forward(%[[STEP:.*]]: tensor<i64> {peft.step}, %[[IDS:.*]]: tensor<2x6xi64> {nn.name = "input_ids"}, %[[LEN:.*]]: tensor<2xi64> {nn.name = "prompt_lengths"})
// CHECK:       %[[POS:.*]] = peft.reft_positions %[[LEN]] {first_n = 0 : i64, group = "all", last_n = 2 : i64}
// CHECK:       %[[H1:.*]] = nn.add
// CHECK:       %[[I0:.*]] = peft.loreft %[[H1]], %{{.*}}, %{{.*}}, %{{.*}}, %[[POS]] {peft.intervention = "layer_0_comp_block_output_unit_pos_nunit_1#0"}
// CHECK-NEXT:  %[[D0:.*]] = peft.dropout %[[I0]], %[[STEP]] {p = 5.000000e-02 : f64, seed = 11 : i64, stream = 4 : i64} : tensor<2x6x4xf32>, tensor<i64>
// CHECK-NEXT:  %[[M0:.*]] = peft.intervention_mask %[[POS]] : tensor<2x2xi64> -> tensor<2x6x1xf32>
// CHECK-NEXT:  %[[S0:.*]] = nn.cast %[[M0]] : tensor<2x6x1xf32> -> tensor<2x6x1xi1>
// CHECK-NEXT:  %[[Y0:.*]] = nn.where %[[S0]], %[[D0]], %[[I0]] : tensor<2x6x1xi1>, tensor<2x6x4xf32>, tensor<2x6x4xf32> -> tensor<2x6x4xf32>
// CHECK:       nn.matmul %[[Y0]]
// CHECK:       %[[H2:.*]] = nn.add %[[Y0]]
// CHECK:       %[[I1:.*]] = peft.loreft %[[H2]], {{.*}} {peft.intervention = "layer_1_comp_block_output_unit_pos_nunit_1#0"}
// CHECK-NEXT:  %[[D1:.*]] = peft.dropout %[[I1]], %[[STEP]] {p = 5.000000e-02 : f64, seed = 11 : i64, stream = 5 : i64}
// CHECK:       %[[Y1:.*]] = nn.where %{{.*}}, %[[D1]], %[[I1]]
// CHECK:       return %[[Y1]]

// -----

// dropout: 0 (pyreft's default) inserts no dropout, no mask and no step
// argument: the intervention's result is the block output.
module attributes {peft.spec = "{peft_type: NODIREFT, layers: [0], positions: f1, low_rank_dimension: 2, dropout: 0.0}"} {
  peft.param @embed.weight : tensor<10x4xf32> frozen value dense<1.0> : tensor<10x4xf32>
  peft.param @model.layers.0.mlp.weight : tensor<4x4xf32> frozen value dense<0.5> : tensor<4x4xf32>
  func.func @forward(%ids: tensor<2x6xi64> {nn.name = "input_ids"}) -> (tensor<2x6x4xf32> {nn.name = "y"}) {
    %e = peft.use @embed.weight : tensor<10x4xf32>
    %h0 = nn.gather %e[%ids] axis 0 : tensor<10x4xf32>, tensor<2x6xi64> -> tensor<2x6x4xf32> loc("/model/embed_tokens/Gather")
    %w0 = peft.use @model.layers.0.mlp.weight : tensor<4x4xf32>
    %m0 = nn.matmul %h0, %w0 : tensor<2x6x4xf32>, tensor<4x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.0/mlp/MatMul")
    %h1 = nn.add %h0, %m0 : tensor<2x6x4xf32>, tensor<2x6x4xf32> -> tensor<2x6x4xf32> loc("/model/layers.0/Add")
    return %h1 : tensor<2x6x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       func.func @forward(%{{.*}}: tensor<2x6xi64> {nn.name = "input_ids"}, %{{.*}}: tensor<2xi64> {nn.name = "prompt_lengths"})
// CHECK-NOT:   peft.dropout
// CHECK-NOT:   peft.intervention_mask
// CHECK:       %[[N:.*]] = peft.nodireft
// CHECK-NEXT:  return %[[N]]
