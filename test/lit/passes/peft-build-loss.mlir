// RUN: peft-opt %s --split-input-file --peft-build-loss | FileCheck %s

// The default loss: causal-LM cross-entropy of output `logits` against a
// new i64 argument `labels` (the logits' shape without the class axis).
// @forward stays; ops feeding only the other output are dropped from @loss.
module attributes {peft.spec = "{peft_type: FULL}"} {
  peft.param @w : tensor<4x7xf32> frozen value dense<1.0> : tensor<4x7xf32>
  func.func @forward(%h: tensor<2x5x4xf32> {nn.name = "hidden"}) -> (tensor<2x5x7xf32> {nn.name = "logits"}, tensor<2x5x4xf32> {nn.name = "states"}) {
    %w = peft.use @w : tensor<4x7xf32>
    %l = nn.matmul %h, %w : tensor<2x5x4xf32>, tensor<4x7xf32> -> tensor<2x5x7xf32>
    %s = nn.tanh %h : tensor<2x5x4xf32>
    return %l, %s : tensor<2x5x7xf32>, tensor<2x5x4xf32>
  }
}

// CHECK-LABEL: func.func @forward
// CHECK:         nn.tanh
// CHECK-LABEL: func.func @loss(%arg0: tensor<2x5x4xf32> {nn.name = "hidden"}, %arg1: tensor<2x5xi64> {nn.name = "labels"}) -> tensor<f32>
// CHECK-NOT:     nn.tanh
// CHECK:         %[[L:.*]] = nn.matmul %arg0
// CHECK:         %[[LOSS:.*]] = peft.cross_entropy %[[L]], %arg1 {shift = "causal"} : tensor<2x5x7xf32>, tensor<2x5xi64> -> tensor<f32>
// CHECK-NEXT:    return %[[LOSS]] : tensor<f32>

// -----

// Named logits and labels, no shift, another ignore_index; labels the model
// takes as an input are that argument, not a new one.
module attributes {peft.spec = "{peft_type: FULL, training: {loss: {type: cross_entropy, logits: scores, labels: tags, shift: none, ignore_index: 0}}}"} {
  func.func @forward(%x: tensor<3x6xf32> {nn.name = "x"}, %t: tensor<3xi64> {nn.name = "tags"}) -> (tensor<3x6xf32> {nn.name = "scores"}) {
    return %x : tensor<3x6xf32>
  }
}

// CHECK-LABEL: func.func @loss(%arg0: tensor<3x6xf32> {nn.name = "x"}, %arg1: tensor<3xi64> {nn.name = "tags"}) -> tensor<f32>
// CHECK:         peft.cross_entropy %arg0, %arg1 {ignore_index = 0 : i64} : tensor<3x6xf32>, tensor<3xi64> -> tensor<f32>

// -----

// MSE against a new float argument of the prediction's type.
module attributes {peft.spec = "{peft_type: FULL, training: {loss: {type: mse, prediction: y, target: y_true}}}"} {
  func.func @forward(%x: tensor<4x2xf32> {nn.name = "x"}) -> (tensor<4x2xf32> {nn.name = "y"}) {
    %y = nn.sigmoid %x : tensor<4x2xf32>
    return %y : tensor<4x2xf32>
  }
}

// CHECK-LABEL: func.func @loss(%arg0: tensor<4x2xf32> {nn.name = "x"}, %arg1: tensor<4x2xf32> {nn.name = "y_true"}) -> tensor<f32>
// CHECK:         %[[Y:.*]] = nn.sigmoid %arg0
// CHECK:         peft.mse %[[Y]], %arg1 : tensor<4x2xf32> -> tensor<f32>

// -----

// A model that computes its own loss: that output is the loss.
module attributes {peft.spec = "{peft_type: FULL, training: {loss: total}}"} {
  func.func @forward(%x: tensor<4xf32> {nn.name = "x"}) -> (tensor<4xf32> {nn.name = "y"}, tensor<f32> {nn.name = "total"}) {
    %s = nn.reduce_sum %x axes [0] : tensor<4xf32> -> tensor<f32>
    return %x, %s : tensor<4xf32>, tensor<f32>
  }
}

// CHECK-LABEL: func.func @loss(%arg0: tensor<4xf32> {nn.name = "x"}) -> tensor<f32>
// CHECK:         %[[S:.*]] = nn.reduce_sum %arg0
// CHECK-NEXT:    return %[[S]] : tensor<f32>
