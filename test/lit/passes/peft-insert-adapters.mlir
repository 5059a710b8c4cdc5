// RUN: peft-opt %s --split-input-file --peft-insert-adapters | FileCheck %s

// LoRA on a TorchScript linear: x·W with the folded [in, out] weight, the
// module path from the node scope. `bias: lora_only` trains the adapted
// layer's bias in place, saved as PEFT's `base_layer.bias`.
module attributes {peft.spec = "{peft_type: LORA, r: 2, lora_alpha: 4, target_modules: [q_proj], bias: lora_only}"} {
  peft.param @"onnx::MatMul_7" : tensor<4x6xf32> frozen value dense<1.0> : tensor<4x6xf32>
  peft.param @model.layers.0.q_proj.bias : tensor<6xf32> frozen value dense<0.5> : tensor<6xf32>
  func.func @forward(%x: tensor<2x3x4xf32> {nn.name = "x"}) -> (tensor<2x3x6xf32> {nn.name = "y"}) {
    %w = peft.use @"onnx::MatMul_7" : tensor<4x6xf32>
    %b = peft.use @model.layers.0.q_proj.bias : tensor<6xf32>
    %y = nn.matmul %x, %w : tensor<2x3x4xf32>, tensor<4x6xf32> -> tensor<2x3x6xf32> loc("/model/layers.0/q_proj/MatMul")
    %z = nn.add %y, %b : tensor<2x3x6xf32>, tensor<6xf32> -> tensor<2x3x6xf32> loc("/model/layers.0/q_proj/Add")
    return %z : tensor<2x3x6xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @"onnx::MatMul_7" : tensor<4x6xf32> frozen
// CHECK:       peft.param @model.layers.0.q_proj.bias : tensor<6xf32> trainable {{.*}} {peft.key = "base_model.model.model.layers.0.q_proj.base_layer.bias"}
// CHECK:       peft.param @base_model.model.model.layers.0.q_proj.lora_A.weight : tensor<2x4xf32> trainable init "kaiming_uniform" {peft.key = "base_model.model.model.layers.0.q_proj.lora_A.weight", peft.method = "lora"}
// CHECK:       peft.param @base_model.model.model.layers.0.q_proj.lora_B.weight : tensor<6x2xf32> trainable init "zeros" {peft.key = "base_model.model.model.layers.0.q_proj.lora_B.weight", peft.method = "lora"}
// CHECK:       %[[W:.*]] = peft.use @"onnx::MatMul_7"
// CHECK:       %[[B:.*]] = peft.use @model.layers.0.q_proj.bias
// CHECK:       %[[A:.*]] = peft.use @base_model.model.model.layers.0.q_proj.lora_A.weight
// CHECK:       %[[LB:.*]] = peft.use @base_model.model.model.layers.0.q_proj.lora_B.weight
// CHECK:       %[[Y:.*]] = peft.lora %arg0, %[[W]], %[[A]], %[[LB]] {peft.module = "model.layers.0.q_proj", scale = 2.000000e+00 : f64, weight_layout = "in_out"}
// CHECK-NOT:   nn.matmul
// CHECK:       nn.add %[[Y]], %[[B]]

// -----

// DoRA on a dynamo-style linear: a state-dict [out, in] weight used through
// a transpose, which folds into weight_layout "out_in" and goes away.
// rank_pattern and alpha_pattern pick per-module r and alpha; rsLoRA scales
// by alpha/sqrt(r); init_lora_weights "gaussian" draws A from N(0, 1/r^2).
module attributes {peft.spec = "{peft_type: LORA, r: 2, lora_alpha: 4, use_dora: true, use_rslora: true, init_lora_weights: gaussian, target_modules: [v_proj, o_proj], rank_pattern: {o_proj: 4}, alpha_pattern: {o_proj: 8}}"} {
  peft.param @blocks.1.attn.v_proj.weight : tensor<6x4xf32> frozen value dense<1.0> : tensor<6x4xf32>
  peft.param @blocks.1.attn.o_proj.weight : tensor<4x6xf32> frozen value dense<1.0> : tensor<4x6xf32>
  func.func @forward(%x: tensor<3x4xf32> {nn.name = "x"}) -> (tensor<3x4xf32> {nn.name = "y"}) {
    %w = peft.use @blocks.1.attn.v_proj.weight : tensor<6x4xf32>
    %wt = nn.transpose %w perm [1, 0] : tensor<6x4xf32> -> tensor<4x6xf32>
    %v = nn.matmul %x, %wt : tensor<3x4xf32>, tensor<4x6xf32> -> tensor<3x6xf32>
    %o = peft.use @blocks.1.attn.o_proj.weight : tensor<4x6xf32>
    %y = nn.matmul %v, %o {transpose_rhs = true} : tensor<3x6xf32>, tensor<4x6xf32> -> tensor<3x4xf32>
    return %y : tensor<3x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @base_model.model.blocks.1.attn.v_proj.lora_A.weight : tensor<2x4xf32> trainable init "gaussian" {peft.key = "base_model.model.blocks.1.attn.v_proj.lora_A.weight", peft.method = "dora"}
// CHECK:       peft.param @base_model.model.blocks.1.attn.v_proj.lora_B.weight : tensor<6x2xf32> trainable init "zeros"
// CHECK:       peft.param @base_model.model.blocks.1.attn.v_proj.lora_magnitude_vector : tensor<6xf32> trainable init "dora_norm" {peft.init_args = {lora_a = @base_model.model.blocks.1.attn.v_proj.lora_A.weight, lora_b = @base_model.model.blocks.1.attn.v_proj.lora_B.weight, scale = 2.8284271247461898 : f64, weight = @blocks.1.attn.v_proj.weight, weight_layout = "out_in"}, peft.key = "base_model.model.blocks.1.attn.v_proj.lora_magnitude_vector", peft.method = "dora"}
// CHECK:       peft.param @base_model.model.blocks.1.attn.o_proj.lora_A.weight : tensor<4x6xf32>
// CHECK:       peft.param @base_model.model.blocks.1.attn.o_proj.lora_B.weight : tensor<4x4xf32>
// CHECK:       peft.param @base_model.model.blocks.1.attn.o_proj.lora_magnitude_vector : tensor<4xf32>
// CHECK-NOT:   nn.transpose
// CHECK:       %[[V:.*]] = peft.dora %arg0, %{{.*}} {peft.module = "blocks.1.attn.v_proj", scale = 2.8284271247461898 : f64, weight_layout = "out_in"} : tensor<3x4xf32>, tensor<6x4xf32>, tensor<2x4xf32>, tensor<6x2xf32>, tensor<6xf32> -> tensor<3x6xf32>
// CHECK:       peft.dora %[[V]], {{.*}} {peft.module = "blocks.1.attn.o_proj", scale = 4.000000e+00 : f64, weight_layout = "out_in"} : tensor<3x6xf32>, tensor<4x6xf32>, tensor<4x6xf32>, tensor<4x4xf32>, tensor<4xf32> -> tensor<3x4xf32>

// -----

// IA3: k_proj's output is scaled after its bias (PEFT scales base_layer(x));
// the feed-forward down_proj's input is scaled. The vectors keep PEFT's
// shapes ([out, 1], [1, in]) and are flattened for peft.ia3.
module attributes {peft.spec = "{peft_type: IA3, target_modules: [k_proj, down_proj], feedforward_modules: [down_proj]}"} {
  peft.param @m.k_proj.weight : tensor<4x6xf32> frozen value dense<1.0> : tensor<4x6xf32>
  peft.param @m.k_proj.bias : tensor<6xf32> frozen value dense<1.0> : tensor<6xf32>
  peft.param @m.down_proj.weight : tensor<6x4xf32> frozen value dense<1.0> : tensor<6x4xf32>
  func.func @forward(%x: tensor<3x4xf32> {nn.name = "x"}) -> (tensor<3x4xf32> {nn.name = "y"}) {
    %w = peft.use @m.k_proj.weight : tensor<4x6xf32>
    %b = peft.use @m.k_proj.bias : tensor<6xf32>
    %k = nn.matmul %x, %w : tensor<3x4xf32>, tensor<4x6xf32> -> tensor<3x6xf32>
    %kb = nn.add %k, %b : tensor<3x6xf32>, tensor<6xf32> -> tensor<3x6xf32>
    %a = nn.relu %kb : tensor<3x6xf32>
    %d = peft.use @m.down_proj.weight : tensor<6x4xf32>
    %y = nn.matmul %a, %d : tensor<3x6xf32>, tensor<6x4xf32> -> tensor<3x4xf32>
    return %y : tensor<3x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @base_model.model.m.k_proj.ia3_l : tensor<6x1xf32> trainable init "ones" {peft.key = "base_model.model.m.k_proj.ia3_l", peft.method = "ia3"}
// CHECK:       peft.param @base_model.model.m.down_proj.ia3_l : tensor<1x6xf32> trainable init "ones"
// CHECK:       %[[K:.*]] = nn.matmul %arg0
// CHECK:       %[[KB:.*]] = nn.add %[[K]]
// CHECK:       %[[L:.*]] = peft.use @base_model.model.m.k_proj.ia3_l : tensor<6x1xf32>
// CHECK:       %[[LF:.*]] = nn.reshape %[[L]] : tensor<6x1xf32> -> tensor<6xf32>
// CHECK:       %[[KS:.*]] = peft.ia3 %[[KB]], %[[LF]] {peft.module = "m.k_proj"}
// CHECK:       %[[A:.*]] = nn.relu %[[KS]]
// CHECK:       %[[DL:.*]] = peft.use @base_model.model.m.down_proj.ia3_l : tensor<1x6xf32>
// CHECK:       %[[DLF:.*]] = nn.reshape %[[DL]] : tensor<1x6xf32> -> tensor<6xf32>
// CHECK:       %[[AS:.*]] = peft.ia3 %[[A]], %[[DLF]] {peft.module = "m.down_proj"}
// CHECK:       nn.matmul %[[AS]], %{{.*}} : tensor<3x6xf32>, tensor<6x4xf32>

// -----

// LoRA + BitFit + a trained head (modules_to_save): the head gets a
// trainable copy with the same bytes, saved under PEFT's key in PyTorch's
// [out, in] layout (the folded weight is its transpose); the original stays
// frozen. BitFit trains every bias, the norm's too; weights stay frozen.
module attributes {peft.spec = "{methods: [{peft_type: LORA, r: 2, target_modules: [fc], modules_to_save: [lm_head]}, {peft_type: BITFIT}]}"} {
  peft.param @ln.weight : tensor<4xf32> frozen value dense<1.0> : tensor<4xf32>
  peft.param @ln.bias : tensor<4xf32> frozen value dense<0.0> : tensor<4xf32>
  peft.param @fc.weight : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  peft.param @fc.bias : tensor<4xf32> frozen value dense<0.0> : tensor<4xf32>
  peft.param @"onnx::MatMul_9" : tensor<4x10xf32> frozen value dense<1.0> : tensor<4x10xf32>
  func.func @forward(%x: tensor<3x4xf32> {nn.name = "x"}) -> (tensor<3x10xf32> {nn.name = "logits"}) {
    %g = peft.use @ln.weight : tensor<4xf32>
    %be = peft.use @ln.bias : tensor<4xf32>
    %n, %mean, %inv = nn.layer_norm %x, %g, %be axis 1 epsilon 1.0e-5 : tensor<3x4xf32>, tensor<4xf32>, tensor<4xf32> -> tensor<3x4xf32>, tensor<3x1xf32>, tensor<3x1xf32>
    %w = peft.use @fc.weight : tensor<4x4xf32>
    %b = peft.use @fc.bias : tensor<4xf32>
    %h = nn.matmul %n, %w : tensor<3x4xf32>, tensor<4x4xf32> -> tensor<3x4xf32>
    %hb = nn.add %h, %b : tensor<3x4xf32>, tensor<4xf32> -> tensor<3x4xf32>
    %head = peft.use @"onnx::MatMul_9" : tensor<4x10xf32>
    %y = nn.matmul %hb, %head : tensor<3x4xf32>, tensor<4x10xf32> -> tensor<3x10xf32> loc("/lm_head/MatMul")
    return %y : tensor<3x10xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @ln.weight : tensor<4xf32> frozen
// CHECK:       peft.param @ln.bias : tensor<4xf32> trainable {{.*}} {peft.key = "base_model.model.ln.bias"}
// CHECK:       peft.param @fc.weight : tensor<4x4xf32> frozen
// CHECK:       peft.param @fc.bias : tensor<4xf32> trainable {{.*}} {peft.key = "base_model.model.fc.base_layer.bias"}
// CHECK:       peft.param @"onnx::MatMul_9" : tensor<4x10xf32> frozen
// CHECK:       peft.param @base_model.model.lm_head.weight : tensor<4x10xf32> trainable value dense<1.000000e+00> : tensor<4x10xf32> {peft.copy_of = @"onnx::MatMul_9", peft.key = "base_model.model.lm_head.weight", peft.key_transposed, peft.method = "modules_to_save"}
// CHECK:       %[[H:.*]] = peft.lora
// CHECK:       %[[HB:.*]] = nn.add %[[H]]
// CHECK:       %[[COPY:.*]] = peft.use @base_model.model.lm_head.weight
// CHECK:       nn.matmul %[[HB]], %[[COPY]]

// -----

// Freeze-layers: the last layer trains in full, in place, under its
// PyTorch names (a plain transformers model: no base_model prefix); a
// folded weight's key is transposed.
module attributes {peft.spec = "{peft_type: FREEZE_LAYERS, last_n_layers: 1}"} {
  peft.param @"onnx::MatMul_1" : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  peft.param @"onnx::MatMul_2" : tensor<4x5xf32> frozen value dense<1.0> : tensor<4x5xf32>
  peft.param @h.1.ln.weight : tensor<5xf32> frozen value dense<1.0> : tensor<5xf32>
  func.func @forward(%x: tensor<3x4xf32> {nn.name = "x"}) -> (tensor<3x5xf32> {nn.name = "y"}) {
    %w0 = peft.use @"onnx::MatMul_1" : tensor<4x4xf32>
    %h0 = nn.matmul %x, %w0 : tensor<3x4xf32>, tensor<4x4xf32> -> tensor<3x4xf32> loc("/h.0/fc/MatMul")
    %w1 = peft.use @"onnx::MatMul_2" : tensor<4x5xf32>
    %h1 = nn.matmul %h0, %w1 : tensor<3x4xf32>, tensor<4x5xf32> -> tensor<3x5xf32> loc("/h.1/fc/MatMul")
    %g = peft.use @h.1.ln.weight : tensor<5xf32>
    %y = nn.mul %h1, %g : tensor<3x5xf32>, tensor<5xf32> -> tensor<3x5xf32> loc("/h.1/ln/Mul")
    return %y : tensor<3x5xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @"onnx::MatMul_1" : tensor<4x4xf32> frozen
// CHECK:       peft.param @"onnx::MatMul_2" : tensor<4x5xf32> trainable {{.*}} {peft.key = "h.1.fc.weight", peft.key_transposed}
// CHECK:       peft.param @h.1.ln.weight : tensor<5xf32> trainable {{.*}} {peft.key = "h.1.ln.weight"}

// -----

// lora_dropout > 0: PEFT applies dropout to the input of the low-rank path
// only (lora_B(lora_A(dropout(x)))), and DoRA's dropout form reads the same
// dropped input; the base product reads x. Each dropout draws its mask from
// the spec's seed, the step counter (a new first argument marked peft.step)
// and its own stream number.
module attributes {peft.spec = "{methods: [{peft_type: LORA, r: 2, lora_dropout: 0.1, target_modules: [q_proj]}, {peft_type: LORA, r: 2, use_dora: true, lora_dropout: 0.25, target_modules: [v_proj]}], training: {seed: 7}}"} {
  peft.param @q.weight : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  peft.param @v.weight : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  func.func @forward(%x: tensor<2x4xf32> {nn.name = "x"}) -> (tensor<2x4xf32> {nn.name = "y"}) {
    %wq = peft.use @q.weight : tensor<4x4xf32>
    %q = nn.matmul %x, %wq : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32> loc("/layers.0/q_proj/MatMul")
    %wv = peft.use @v.weight : tensor<4x4xf32>
    %v = nn.matmul %q, %wv : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32> loc("/layers.0/v_proj/MatMul")
    return %v : tensor<2x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       func.func @forward(%[[STEP:.*]]: tensor<i64> {peft.step}, %[[X:.*]]: tensor<2x4xf32> {nn.name = "x"})
// CHECK:       %[[XD:.*]] = peft.dropout %[[X]], %[[STEP]] {p = 1.000000e-01 : f64, peft.module = "layers.0.q_proj", seed = 7 : i64, stream = 0 : i64} : tensor<2x4xf32>, tensor<i64>
// CHECK:       %[[Q:.*]] = peft.lora %[[X]], %{{.*}}, %{{.*}}, %{{.*}} adapter_input %[[XD]]
// CHECK:       %[[QD:.*]] = peft.dropout %[[Q]], %[[STEP]] {p = 2.500000e-01 : f64, peft.module = "layers.0.v_proj", seed = 7 : i64, stream = 1 : i64}
// CHECK:       peft.dora %[[Q]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} adapter_input %[[QD]]

// -----

// lora_dropout: 0 (PEFT's default) inserts no dropout and no step argument.
module attributes {peft.spec = "{peft_type: LORA, r: 2, lora_dropout: 0.0, target_modules: [q_proj]}"} {
  peft.param @q.weight : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  func.func @forward(%x: tensor<2x4xf32> {nn.name = "x"}) -> (tensor<2x4xf32> {nn.name = "y"}) {
    %wq = peft.use @q.weight : tensor<4x4xf32>
    %q = nn.matmul %x, %wq : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32> loc("/layers.0/q_proj/MatMul")
    return %q : tensor<2x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       func.func @forward(%{{.*}}: tensor<2x4xf32> {nn.name = "x"})
// CHECK-NOT:   peft.dropout
// CHECK:       peft.lora
// CHECK-NOT:   adapter_input
