// RUN: peft-opt %s --peft-differentiate=func=objective | FileCheck %s

// The loss function is named by the `func` option; its other results (here
// the logits) are not part of the step. Params are returned in declaration
// order, whichever order the function reads them in.
peft.param @a : tensor<2xf64> trainable init "zeros"
peft.param @frozen : tensor<2xf64> frozen init "zeros"
peft.param @b : tensor<2xf64> trainable init "zeros"
peft.param @unused : tensor<4xf64> trainable init "zeros"

func.func @objective(%x: tensor<2xf64>) -> (tensor<f64>, tensor<2xf64>) {
  %b = peft.use @b : tensor<2xf64>
  %a = peft.use @a : tensor<2xf64>
  %f = peft.use @frozen : tensor<2xf64>
  %ax = nn.mul %a, %x : tensor<2xf64>, tensor<2xf64> -> tensor<2xf64>
  %y = nn.add %ax, %b : tensor<2xf64>, tensor<2xf64> -> tensor<2xf64>
  %logits = nn.mul %y, %f : tensor<2xf64>, tensor<2xf64> -> tensor<2xf64>
  %l = nn.reduce_sum %y axes [0] : tensor<2xf64> -> tensor<f64>
  return %l, %logits : tensor<f64>, tensor<2xf64>
}

// CHECK-LABEL: func.func @objective
// CHECK-LABEL: func.func @train_step(%{{.*}}: tensor<2xf64>)
// CHECK-SAME:  -> (tensor<f64>, tensor<2xf64> {peft.grad_of = @a}, tensor<2xf64> {peft.grad_of = @b}, tensor<4xf64> {peft.grad_of = @unused})
// The frozen param only fed the dropped logits: it is gone from the step.
// CHECK-NOT:   peft.use @frozen
// CHECK:       %[[ZERO:.*]] = nn.constant dense<0.000000e+00> : tensor<4xf64>
// CHECK:       return %{{.*}}, %{{.*}}, %{{.*}}, %[[ZERO]]
