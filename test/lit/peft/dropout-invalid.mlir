// peft.dropout rejects a probability outside [0, 1], as torch.nn.Dropout.
// RUN: peft-opt %s --split-input-file --verify-diagnostics

func.func @too_large(%x: tensor<4xf32>, %s: tensor<i64>) -> tensor<4xf32> {
  // expected-error @+1 {{'peft.dropout' op p must be in [0, 1], got 1.5}}
  %y = peft.dropout %x, %s {p = 1.5 : f64, seed = 0 : i64, stream = 0 : i64} : tensor<4xf32>, tensor<i64>
  return %y : tensor<4xf32>
}

// -----

func.func @negative(%x: tensor<4xf32>, %s: tensor<i64>) -> tensor<4xf32> {
  // expected-error @+1 {{'peft.dropout' op p must be in [0, 1], got -2.500000e-01}}
  %y = peft.dropout %x, %s {p = -0.25 : f64, seed = 0 : i64, stream = 0 : i64} : tensor<4xf32>, tensor<i64>
  return %y : tensor<4xf32>
}

// -----

func.func @step_type(%x: tensor<4xf32>, %s: tensor<i32>) -> tensor<4xf32> {
  // expected-error @+1 {{'peft.dropout' op operand #1 must be 0D tensor of 64-bit signless integer values}}
  %y = peft.dropout %x, %s {p = 0.5 : f64, seed = 0 : i64, stream = 0 : i64} : tensor<4xf32>, tensor<i32>
  return %y : tensor<4xf32>
}
