// RUN: peft-opt %s --split-input-file --verify-diagnostics | peft-opt | FileCheck %s

// The backward-only ops that gradient rules create round-trip.
// CHECK-LABEL: func.func @grads
// CHECK: nn.conv_weight_grad %{{.*}}, %{{.*}} strides [2, 1] pads [1, 0, 1, 1] dilations [1, 2] group 2 : tensor<2x4x5x6xf32>, tensor<2x6x3x5xf32> -> tensor<6x2x3x2xf32>
// CHECK: nn.max_pool_grad %{{.*}}, %{{.*}} kernel [2, 2] strides [2, 2] pads [0, 0, 1, 1] dilations [1, 1] : tensor<1x2x5x5xf32>, tensor<1x2x3x3xf32> -> tensor<1x2x5x5xf32>
// CHECK: nn.avg_pool_grad %{{.*}} kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1] dilations [1, 1] {count_include_pad = true} : tensor<1x2x3x3xf32> -> tensor<1x2x5x5xf32>
func.func @grads(%x: tensor<2x4x5x6xf32>, %dy: tensor<2x6x3x5xf32>,
                 %p: tensor<1x2x5x5xf32>, %dp: tensor<1x2x3x3xf32>)
    -> (tensor<6x2x3x2xf32>, tensor<1x2x5x5xf32>, tensor<1x2x5x5xf32>) {
  %dw = nn.conv_weight_grad %x, %dy strides [2, 1] pads [1, 0, 1, 1] dilations [1, 2] group 2 : tensor<2x4x5x6xf32>, tensor<2x6x3x5xf32> -> tensor<6x2x3x2xf32>
  %dm = nn.max_pool_grad %p, %dp kernel [2, 2] strides [2, 2] pads [0, 0, 1, 1] dilations [1, 1] : tensor<1x2x5x5xf32>, tensor<1x2x3x3xf32> -> tensor<1x2x5x5xf32>
  %da = nn.avg_pool_grad %dp kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1] dilations [1, 1] {count_include_pad = true} : tensor<1x2x3x3xf32> -> tensor<1x2x5x5xf32>
  return %dw, %dm, %da : tensor<6x2x3x2xf32>, tensor<1x2x5x5xf32>, tensor<1x2x5x5xf32>
}

// -----

func.func @conv_weight_grad_shape(%x: tensor<2x4x5x6xf32>, %dy: tensor<2x6x4x5xf32>) -> tensor<6x2x3x2xf32> {
  // expected-error @+1 {{grad_output has shape [2, 6, 4, 5] but the forward op produces [2, 6, 3, 5]}}
  %dw = nn.conv_weight_grad %x, %dy strides [2, 1] pads [1, 0, 1, 1] dilations [1, 2] group 2 : tensor<2x4x5x6xf32>, tensor<2x6x4x5xf32> -> tensor<6x2x3x2xf32>
  return %dw : tensor<6x2x3x2xf32>
}

// -----

func.func @conv_weight_grad_groups(%x: tensor<2x4x5x6xf32>, %dy: tensor<2x6x3x5xf32>) -> tensor<6x4x3x2xf32> {
  // expected-error @+1 {{weight [6, 4, 3, 2] does not fit 4 input channels in 2 groups}}
  %dw = nn.conv_weight_grad %x, %dy strides [2, 1] pads [1, 0, 1, 1] dilations [1, 2] group 2 : tensor<2x4x5x6xf32>, tensor<2x6x3x5xf32> -> tensor<6x4x3x2xf32>
  return %dw : tensor<6x4x3x2xf32>
}

// -----

func.func @max_pool_grad_shape(%p: tensor<1x2x5x5xf32>, %dp: tensor<1x2x2x2xf32>) -> tensor<1x2x5x5xf32> {
  // expected-error @+1 {{grad_output has shape [1, 2, 2, 2] but the forward op produces [1, 2, 3, 3]}}
  %dm = nn.max_pool_grad %p, %dp kernel [2, 2] strides [2, 2] pads [0, 0, 1, 1] dilations [1, 1] : tensor<1x2x5x5xf32>, tensor<1x2x2x2xf32> -> tensor<1x2x5x5xf32>
  return %dm : tensor<1x2x5x5xf32>
}

// -----

func.func @avg_pool_grad_window(%dp: tensor<1x2x3x3xf32>) -> tensor<1x2x5x5xf32> {
  // expected-error @+1 {{needs kernel sizes, strides and dilations >= 1 and pads >= 0}}
  %da = nn.avg_pool_grad %dp kernel [3, 3] strides [0, 2] pads [1, 1, 1, 1] dilations [1, 1] : tensor<1x2x3x3xf32> -> tensor<1x2x5x5xf32>
  return %da : tensor<1x2x5x5xf32>
}
