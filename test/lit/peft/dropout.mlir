// peft.dropout parses and prints back; its result has the input's type.
// dropout-invalid.mlir: what the verifier rejects.
// RUN: peft-opt %s --split-input-file | FileCheck %s
// RUN: peft-opt %s --split-input-file --mlir-print-op-generic | peft-opt --split-input-file | FileCheck %s

// CHECK-LABEL: func.func @adapter_input
// CHECK: %[[D:.*]] = peft.dropout %arg0, %arg1 {p = 1.000000e-01 : f64, seed = 42 : i64, stream = 3 : i64} : tensor<2x8x32xf32>, tensor<i64>
// CHECK: return %[[D]] : tensor<2x8x32xf32>
func.func @adapter_input(%x: tensor<2x8x32xf32>, %step: tensor<i64>) -> tensor<2x8x32xf32> {
  %d = peft.dropout %x, %step {p = 0.1 : f64, seed = 42 : i64, stream = 3 : i64} : tensor<2x8x32xf32>, tensor<i64>
  return %d : tensor<2x8x32xf32>
}
