// RUN: peft-opt %s --split-input-file --peft-freeze --verify-diagnostics | FileCheck %s

// Only what the spec trains (what peft-insert-adapters gave a peft.key)
// stays trainable; a param marked trainable some other way is frozen.
module {
  peft.param @w : tensor<4x4xf32> trainable value dense<1.0> : tensor<4x4xf32>
  peft.param @lora_A : tensor<1x4xf32> trainable init "kaiming_uniform" {peft.key = "base_model.model.q.lora_A.weight", peft.method = "lora"}
  peft.param @lora_B : tensor<4x1xf32> trainable init "zeros" {peft.key = "base_model.model.q.lora_B.weight", peft.method = "lora"}
  func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
    %w = peft.use @w : tensor<4x4xf32>
    %a = peft.use @lora_A : tensor<1x4xf32>
    %b = peft.use @lora_B : tensor<4x1xf32>
    %y = peft.lora %x, %w, %a, %b {scale = 8.0 : f64, weight_layout = "out_in"} : tensor<2x4xf32>, tensor<4x4xf32>, tensor<1x4xf32>, tensor<4x1xf32> -> tensor<2x4xf32>
    return %y : tensor<2x4xf32>
  }
}

// CHECK:      peft.param @w : tensor<4x4xf32> frozen
// CHECK-NEXT: peft.param @lora_A : tensor<1x4xf32> trainable
// CHECK-NEXT: peft.param @lora_B : tensor<4x1xf32> trainable

// -----

// A trainable param no function reads cannot learn anything.
module {
  // expected-warning @below {{peft-freeze: trainable param @unread is read by no function, so training cannot change it}}
  peft.param @unread : tensor<4xf32> trainable init "zeros" {peft.key = "unread"}
  func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}

// -----

// Nothing to train is an error.
// expected-error @below {{peft-freeze: no param is trainable}}
module {
  peft.param @w : tensor<4xf32> trainable value dense<1.0> : tensor<4xf32>
  func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
    %w = peft.use @w : tensor<4xf32>
    %y = nn.add %x, %w : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    return %y : tensor<4xf32>
  }
}
