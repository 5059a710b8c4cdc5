// RUN: peft-opt %s --split-input-file --verify-diagnostics --peft-build-loss

// The loss reads an output the model does not have.
module attributes {peft.spec = "{peft_type: FULL}"} {
  // expected-error @below {{the loss reads model output 'logits', but @forward has no output of that name (outputs: 'scores')}}
  func.func @forward(%x: tensor<2x3x5xf32> {nn.name = "x"}) -> (tensor<2x3x5xf32> {nn.name = "scores"}) {
    return %x : tensor<2x3x5xf32>
  }
}

// -----

// training.inputs gives labels a shape that does not fit the logits.
module attributes {peft.spec = "{peft_type: FULL, training: {inputs: {labels: [2, 4]}}}"} {
  // expected-error @below {{training.inputs gives 'labels' the shape [2, 4], but as the loss's labels it must be [2, 3]}}
  func.func @forward(%x: tensor<2x3x5xf32> {nn.name = "x"}) -> (tensor<2x3x5xf32> {nn.name = "logits"}) {
    return %x : tensor<2x3x5xf32>
  }
}

// -----

// A model-output loss must be one number.
module attributes {peft.spec = "{peft_type: FULL, training: {loss: y}}"} {
  // expected-error @below {{model output 'y' is 'tensor<4xf32>'; a loss output must hold one number}}
  func.func @forward(%x: tensor<4xf32> {nn.name = "x"}) -> (tensor<4xf32> {nn.name = "y"}) {
    return %x : tensor<4xf32>
  }
}

// -----

// expected-error @below {{peft-build-loss: the module has a @loss already}}
module attributes {peft.spec = "{peft_type: FULL}"} {
  func.func @forward(%x: tensor<2x3x5xf32> {nn.name = "x"}) -> (tensor<2x3x5xf32> {nn.name = "logits"}) {
    return %x : tensor<2x3x5xf32>
  }
  func.func @loss(%x: tensor<f32>) -> tensor<f32> {
    return %x : tensor<f32>
  }
}

// -----

// expected-error @below {{peft-build-loss: no function @forward to build the loss on}}
module attributes {peft.spec = "{peft_type: FULL}"} {
}
