// RUN: peft-opt %s --split-input-file --peft-insert-adapters | FileCheck %s

// seq_bn (Pfeiffer) after the FFN of a pre-norm layer: with the FFN output m
// (down_proj) and the residual stream r, the adapters library computes
// (s·A(m + r) + m) + r, A(x) = up(relu(down(x))); reduction_factor 2 makes
// the bottleneck 4 / 2 = 2 wide; "bert" init draws both weights.
module attributes {peft.spec = "{peft_type: SEQ_BN, reduction_factor: 2}"} {
  peft.param @"onnx::MatMul_9" : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  func.func @forward(%r: tensor<2x3x4xf32> {nn.name = "r"}, %h: tensor<2x3x4xf32> {nn.name = "h"}) -> (tensor<2x3x4xf32> {nn.name = "y"}) {
    %w = peft.use @"onnx::MatMul_9" : tensor<4x4xf32>
    %m = nn.matmul %h, %w : tensor<2x3x4xf32>, tensor<4x4xf32> -> tensor<2x3x4xf32> loc("/model/layers.0/mlp/down_proj/MatMul")
    %y = nn.add %r, %m : tensor<2x3x4xf32>, tensor<2x3x4xf32> -> tensor<2x3x4xf32>
    %z = nn.mul %y, %y : tensor<2x3x4xf32>, tensor<2x3x4xf32> -> tensor<2x3x4xf32>
    return %z : tensor<2x3x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @model.layers.0.output_adapters.adapters.bottleneck.adapter_down.0.weight : tensor<2x4xf32> trainable init "bert_normal" {peft.key = "model.layers.0.output_adapters.adapters.bottleneck.adapter_down.0.weight", peft.method = "bottleneck"}
// CHECK:       peft.param @model.layers.0.output_adapters.adapters.bottleneck.adapter_down.0.bias : tensor<2xf32> trainable init "zeros"
// CHECK:       peft.param @model.layers.0.output_adapters.adapters.bottleneck.adapter_up.weight : tensor<4x2xf32> trainable init "bert_normal"
// CHECK:       peft.param @model.layers.0.output_adapters.adapters.bottleneck.adapter_up.bias : tensor<4xf32> trainable init "zeros"
// CHECK:       %[[M:.*]] = nn.matmul %arg1, %{{.*}} : tensor<2x3x4xf32>, tensor<4x4xf32> -> tensor<2x3x4xf32>
// CHECK:       %[[SUM:.*]] = nn.add %arg0, %[[M]]
// CHECK:       %[[DW:.*]] = peft.use @model.layers.0.output_adapters.adapters.bottleneck.adapter_down.0.weight
// CHECK:       %[[DB:.*]] = peft.use @model.layers.0.output_adapters.adapters.bottleneck.adapter_down.0.bias
// CHECK:       %[[D:.*]] = nn.matmul %[[SUM]], %[[DW]] {peft.module = "model.layers.0.output_adapters.adapters.bottleneck.adapter_down.0", transpose_rhs = true} : tensor<2x3x4xf32>, tensor<2x4xf32> -> tensor<2x3x2xf32>
// CHECK:       %[[DA:.*]] = nn.add %[[D]], %[[DB]]
// CHECK:       %[[ACT:.*]] = nn.relu %[[DA]]
// CHECK:       %[[U:.*]] = nn.matmul %[[ACT]], %{{.*}} {peft.module = "model.layers.0.output_adapters.adapters.bottleneck.adapter_up", transpose_rhs = true} : tensor<2x3x2xf32>, tensor<4x2xf32> -> tensor<2x3x4xf32>
// CHECK:       %[[UA:.*]] = nn.add %[[U]], %{{.*}}
// CHECK:       %[[RES:.*]] = nn.add %[[UA]], %[[M]]
// CHECK:       %[[OUT:.*]] = nn.add %[[RES]], %arg0
// CHECK:       nn.mul %[[OUT]], %[[OUT]]

// -----

// par_bn beside the FFN: s·A(r) + m + r with scaling 4 and the mam_adapter
// init (down kaiming-uniform, up zeros); double_seq_bn's attention adapter
// is the same construction after o_proj. leave_out skips layer 1.
module attributes {peft.spec = "{peft_type: PAR_BN, non_linearity: silu, leave_out: [1]}"} {
  peft.param @"onnx::MatMul_9" : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  peft.param @"onnx::MatMul_10" : tensor<4x4xf32> frozen value dense<1.0> : tensor<4x4xf32>
  func.func @forward(%r: tensor<2x3x4xf32> {nn.name = "r"}, %h: tensor<2x3x4xf32> {nn.name = "h"}) -> (tensor<2x3x4xf32> {nn.name = "y"}) {
    %w = peft.use @"onnx::MatMul_9" : tensor<4x4xf32>
    %m = nn.matmul %h, %w : tensor<2x3x4xf32>, tensor<4x4xf32> -> tensor<2x3x4xf32> loc("/model/layers.0/mlp/down_proj/MatMul")
    %y = nn.add %r, %m : tensor<2x3x4xf32>, tensor<2x3x4xf32> -> tensor<2x3x4xf32>
    %w1 = peft.use @"onnx::MatMul_10" : tensor<4x4xf32>
    %m1 = nn.matmul %y, %w1 : tensor<2x3x4xf32>, tensor<4x4xf32> -> tensor<2x3x4xf32> loc("/model/layers.1/mlp/down_proj/MatMul")
    %y1 = nn.add %y, %m1 : tensor<2x3x4xf32>, tensor<2x3x4xf32> -> tensor<2x3x4xf32>
    return %y1 : tensor<2x3x4xf32>
  }
}

// CHECK-LABEL: module attributes {peft.spec
// CHECK:       peft.param @model.layers.0.output_adapters.adapters.bottleneck.adapter_down.0.weight : tensor<2x4xf32> trainable init "kaiming_uniform"
// CHECK:       peft.param @model.layers.0.output_adapters.adapters.bottleneck.adapter_up.weight : tensor<4x2xf32> trainable init "zeros"
// CHECK-NOT:   peft.param @model.layers.1.output_adapters
// CHECK:       %[[M:.*]] = nn.matmul %arg1
// CHECK:       nn.add %arg0, %[[M]]
// CHECK:       %[[D:.*]] = nn.matmul %arg0, %{{.*}} {peft.module = "model.layers.0.output_adapters.adapters.bottleneck.adapter_down.0", transpose_rhs = true}
// CHECK:       %[[DA:.*]] = nn.add %[[D]]
// CHECK:       %[[SIG:.*]] = nn.sigmoid %[[DA]]
// CHECK:       %[[ACT:.*]] = nn.mul %[[DA]], %[[SIG]]
// CHECK:       %[[U:.*]] = nn.matmul %[[ACT]]
// CHECK:       %[[UA:.*]] = nn.add %[[U]]
// CHECK:       %[[S:.*]] = nn.constant dense<4.000000e+00> : tensor<f32>
// CHECK:       %[[SCALED:.*]] = nn.mul %[[UA]], %[[S]]
// CHECK:       %[[RES:.*]] = nn.add %[[SCALED]], %[[M]]
// CHECK:       %[[OUT:.*]] = nn.add %[[RES]], %arg0
// CHECK:       %[[M1:.*]] = nn.matmul %[[OUT]]
// CHECK:       %[[Y1:.*]] = nn.add %[[OUT]], %[[M1]]
// CHECK:       return %[[Y1]]

