// RUN: peft-opt %s --peft-decompose | FileCheck %s

// LoRA: the base product, then the r-wide path x·Aᵀ then ·Bᵀ, scaled; B·A
// is never formed (no [out, in] product of the adapter weights).
// CHECK-LABEL: func.func @lora
// CHECK: %[[BASE:.*]] = nn.matmul %arg0, %arg1 : tensor<2x8x32xf32>, tensor<32x64xf32> -> tensor<2x8x64xf32>
// CHECK: %[[T:.*]] = nn.matmul %arg0, %arg2 {transpose_rhs = true} : tensor<2x8x32xf32>, tensor<4x32xf32> -> tensor<2x8x4xf32>
// CHECK: %[[LO:.*]] = nn.matmul %[[T]], %arg3 {transpose_rhs = true} : tensor<2x8x4xf32>, tensor<64x4xf32> -> tensor<2x8x64xf32>
// CHECK: %[[S:.*]] = nn.constant dense<2.000000e+00> : tensor<f32>
// CHECK: %[[SCALED:.*]] = nn.mul %[[LO]], %[[S]]
// CHECK: %[[Y:.*]] = nn.add %[[BASE]], %[[SCALED]]
// CHECK-NOT: peft.lora
// CHECK: return %[[Y]]
func.func @lora(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) -> tensor<2x8x64xf32> {
  %y = peft.lora %x, %w, %a, %b {scale = 2.0 : f64, weight_layout = "in_out"} : tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<4x32xf32>, tensor<64x4xf32> -> tensor<2x8x64xf32>
  return %y : tensor<2x8x64xf32>
}

// A scale f32 cannot hold is made in f64 and cast, so f64 evaluation sees
// it exactly; out_in weights multiply transposed.
// CHECK-LABEL: func.func @lora_out_in
// CHECK: nn.matmul %arg0, %arg1 {transpose_rhs = true} : tensor<8x32xf32>, tensor<64x32xf32> -> tensor<8x64xf32>
// CHECK: %[[S64:.*]] = nn.constant dense<0.33333333333333331> : tensor<f64>
// CHECK: nn.cast %[[S64]] : tensor<f64> -> tensor<f32>
func.func @lora_out_in(%x: tensor<8x32xf32>, %w: tensor<64x32xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) -> tensor<8x64xf32> {
  %y = peft.lora %x, %w, %a, %b {scale = 0.33333333333333331 : f64, weight_layout = "out_in"} : tensor<8x32xf32>, tensor<64x32xf32>, tensor<4x32xf32>, tensor<64x4xf32> -> tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}

// DoRA: the norm from [r, out] and [r, r] products, c = m / n, and PEFT's
// x·W + ((c − 1)·(x·W) + (c·lo)·s).
// CHECK-LABEL: func.func @dora
// CHECK: nn.matmul %arg2, %arg1 {transpose_rhs = true} : tensor<4x32xf32>, tensor<64x32xf32> -> tensor<4x64xf32>
// CHECK: nn.matmul %arg2, %arg2 {transpose_rhs = true} : tensor<4x32xf32>, tensor<4x32xf32> -> tensor<4x4xf32>
// CHECK: %[[N:.*]] = nn.sqrt
// CHECK: %[[C:.*]] = nn.div %arg4, %[[N]] : tensor<64xf32>, tensor<64xf32> -> tensor<64xf32>
// CHECK: %[[BASE:.*]] = nn.matmul %arg0, %arg1 {transpose_rhs = true} : tensor<8x32xf32>, tensor<64x32xf32> -> tensor<8x64xf32>
// CHECK-NOT: tensor<64x32xf32> -> tensor<64x32xf32>
// CHECK: %[[CM1:.*]] = nn.add %[[C]], %{{.*}} : tensor<64xf32>, tensor<f32> -> tensor<64xf32>
// CHECK: nn.mul %[[CM1]], %[[BASE]]
// CHECK-NOT: peft.dora
func.func @dora(%x: tensor<8x32xf32>, %w: tensor<64x32xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>, %m: tensor<64xf32>) -> tensor<8x64xf32> {
  %y = peft.dora %x, %w, %a, %b, %m {scale = 2.0 : f64, weight_layout = "out_in"} : tensor<8x32xf32>, tensor<64x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<64xf32> -> tensor<8x64xf32>
  return %y : tensor<8x64xf32>
}

// CHECK-LABEL: func.func @ia3_mse
// CHECK: %[[H:.*]] = nn.mul %arg0, %arg1 : tensor<2x8xf32>, tensor<8xf32> -> tensor<2x8xf32>
// CHECK: %[[D:.*]] = nn.sub %[[H]], %arg2
// CHECK: %[[SQ:.*]] = nn.mul %[[D]], %[[D]]
// CHECK: %[[SUM:.*]] = nn.reduce_sum %[[SQ]] axes [0, 1] : tensor<2x8xf32> -> tensor<f32>
// CHECK: %[[N:.*]] = nn.constant dense<1.600000e+01> : tensor<f32>
// CHECK: nn.div %[[SUM]], %[[N]]
func.func @ia3_mse(%h: tensor<2x8xf32>, %l: tensor<8xf32>, %t: tensor<2x8xf32>) -> tensor<f32> {
  %s = peft.ia3 %h, %l : tensor<2x8xf32>, tensor<8xf32> -> tensor<2x8xf32>
  %loss = peft.mse %s, %t : tensor<2x8xf32> -> tensor<f32>
  return %loss : tensor<f32>
}

// Causal cross-entropy: labels shifted left with ignore_index appended,
// ignored positions read class 0 and count zero.
// CHECK-LABEL: func.func @cross_entropy
// CHECK: %[[FILL:.*]] = nn.constant dense<-100> : tensor<2x1xi64>
// CHECK: %[[NEXT:.*]] = nn.slice %arg1 starts [0, 1] sizes [2, 4] steps [1, 1]
// CHECK: %[[TARGET:.*]] = nn.concat %[[NEXT]], %[[FILL]] axis 1
// CHECK: %[[IGN:.*]] = nn.equal %[[TARGET]], %{{.*}} : tensor<2x5xi64>, tensor<i64> -> tensor<2x5xi1>
// CHECK: %[[SAFE:.*]] = nn.where %[[IGN]], %{{.*}}, %[[TARGET]]
// CHECK: %[[LP:.*]] = nn.log_softmax %arg0 axis 2 : tensor<2x5x7xf32>
// CHECK: %[[IDX:.*]] = nn.reshape %[[SAFE]] : tensor<2x5xi64> -> tensor<2x5x1xi64>
// CHECK: nn.gather_elements %[[LP]][%[[IDX]]] axis 2 : tensor<2x5x7xf32>, tensor<2x5x1xi64> -> tensor<2x5x1xf32>
// CHECK: %[[TOTAL:.*]] = nn.reduce_sum %{{.*}} axes [0, 1] : tensor<2x5xf32> -> tensor<f32>
// CHECK: %[[COUNT:.*]] = nn.reduce_sum %{{.*}} axes [0, 1] : tensor<2x5xf32> -> tensor<f32>
// CHECK: %[[LOSS:.*]] = nn.div %[[TOTAL]], %[[COUNT]]
// CHECK: return %[[LOSS]]
func.func @cross_entropy(%logits: tensor<2x5x7xf32>, %labels: tensor<2x5xi64>) -> tensor<f32> {
  %loss = peft.cross_entropy %logits, %labels {shift = "causal", ignore_index = -100 : i64} : tensor<2x5x7xf32>, tensor<2x5xi64> -> tensor<f32>
  return %loss : tensor<f32>
}

// The optimizer ops stay for the kernel emitter.
// CHECK-LABEL: func.func @update
// CHECK: peft.adamw
func.func @update(%p: tensor<4xf32>, %g: tensor<4xf32>, %m: tensor<4xf32>, %v: tensor<4xf32>, %lr: tensor<f32>, %step: tensor<i64>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  %np, %nm, %nv = peft.adamw %p, %g, %m, %v, %lr, %step {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : tensor<4xf32>, tensor<f32>, tensor<i64>
  return %np, %nm, %nv : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}
