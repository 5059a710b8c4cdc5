// RUN: peft-opt %s --split-input-file --verify-diagnostics --peft-differentiate

// expected-error @+1 {{peft-differentiate: the module has no function @loss}}
module {
  peft.param @w : tensor<3xf32> trainable init "zeros"
  func.func @forward(%x: tensor<3xf32>) -> tensor<3xf32> {
    return %x : tensor<3xf32>
  }
}

// -----

// expected-error @+1 {{no peft.param is trainable}}
module {
  peft.param @w : tensor<3xf32> frozen init "zeros"
  func.func @loss(%x: tensor<3xf32>) -> tensor<f32> {
    %w = peft.use @w : tensor<3xf32>
    %y = nn.mul %x, %w : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
    %l = nn.reduce_sum %y axes [0] : tensor<3xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

peft.param @w : tensor<3xf32> trainable init "zeros"
// expected-error @+1 {{the first result of @loss must be the loss, a one-element float tensor}}
func.func @loss(%x: tensor<3xf32>) -> tensor<3xf32> {
  %w = peft.use @w : tensor<3xf32>
  %y = nn.mul %x, %w : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  return %y : tensor<3xf32>
}

// -----

peft.param @w : tensor<3xf32> trainable init "zeros"
func.func @loss(%x: tensor<3xf32>) -> tensor<f32> {
  %w = peft.use @w : tensor<3xf32>
  // expected-error @+1 {{cannot differentiate 'nn.pad': pad mode 'reflect' by 3 and 0 along a dim of 3 has no gradient rule}}
  %p = nn.pad %w mode "reflect" low [3] high [0] : tensor<3xf32> -> tensor<6xf32>
  %l = nn.reduce_sum %p axes [0] : tensor<6xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A loss that ignores the trainable params: a warning, and zero gradients.
peft.param @w : tensor<3xf32> trainable init "zeros"
// expected-warning @+1 {{the loss does not depend on any trainable param; every gradient is zero}}
func.func @loss(%x: tensor<3xf32>) -> tensor<f32> {
  %l = nn.reduce_sum %x axes [0] : tensor<3xf32> -> tensor<f32>
  return %l : tensor<f32>
}
