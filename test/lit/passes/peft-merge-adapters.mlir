// RUN: peft-opt %s --split-input-file --peft-merge-adapters | FileCheck %s

// LoRA on an [in, out] weight (TorchScript/Conv1D layout, x·W): the merged
// weight is W + s·Aᵀ·Bᵀ, computed in @merge_adapters; @forward multiplies by
// the merged param and no longer reads the adapter.
peft.param @w : tensor<8x4xf32> frozen init "zeros"
peft.param @a : tensor<2x8xf32> trainable init "zeros" {peft.method = "lora"}
peft.param @b : tensor<4x2xf32> trainable init "zeros" {peft.method = "lora"}
func.func @forward(%x: tensor<3x8xf32>) -> tensor<3x4xf32> {
  %w = peft.use @w : tensor<8x4xf32>
  %a = peft.use @a : tensor<2x8xf32>
  %b = peft.use @b : tensor<4x2xf32>
  %y = peft.lora %x, %w, %a, %b {peft.module = "proj", scale = 2.0 : f64, weight_layout = "in_out"} : tensor<3x8xf32>, tensor<8x4xf32>, tensor<2x8xf32>, tensor<4x2xf32> -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// CHECK:       peft.param @proj.weight.merged : tensor<8x4xf32> frozen {peft.computed_by = @merge_adapters}
// CHECK-LABEL: func.func @forward
// CHECK-NEXT:    %[[W:.*]] = peft.use @proj.weight.merged : tensor<8x4xf32>
// CHECK-NEXT:    %[[Y:.*]] = nn.matmul %{{.*}}, %[[W]] {peft.module = "proj"} : tensor<3x8xf32>, tensor<8x4xf32> -> tensor<3x4xf32>
// CHECK-NEXT:    return %[[Y]]
// CHECK-LABEL: func.func @merge_adapters()
// CHECK-DAG:     %[[W0:.*]] = peft.use @w
// CHECK-DAG:     %[[A:.*]] = peft.use @a
// CHECK-DAG:     %[[B:.*]] = peft.use @b
// CHECK:         %[[D:.*]] = nn.matmul %[[A]], %[[B]] {transpose_lhs = true, transpose_rhs = true} : tensor<2x8xf32>, tensor<4x2xf32> -> tensor<8x4xf32>
// CHECK:         %[[S:.*]] = nn.constant dense<2.000000e+00> : tensor<f32>
// CHECK:         %[[SD:.*]] = nn.mul %[[D]], %[[S]]
// CHECK:         %[[M:.*]] = nn.add %[[W0]], %[[SD]]
// CHECK:         peft.assign @proj.weight.merged, %[[M]] : tensor<8x4xf32>
// CHECK-NEXT:    return

// -----

// DoRA on an [out, in] weight read through a transpose (x·Wᵀ): V = W + s·B·A,
// one norm per output feature over axis 1, W' = V·m/n; @forward uses
// transpose_rhs.
peft.param @w : tensor<4x8xf32> frozen init "zeros"
peft.param @a : tensor<2x8xf32> trainable init "zeros" {peft.method = "lora"}
peft.param @b : tensor<4x2xf32> trainable init "zeros" {peft.method = "lora"}
peft.param @m : tensor<4xf32> trainable init "ones" {peft.method = "lora"}
func.func @forward(%x: tensor<3x8xf32>) -> tensor<3x4xf32> {
  %w = peft.use @w : tensor<4x8xf32>
  %a = peft.use @a : tensor<2x8xf32>
  %b = peft.use @b : tensor<4x2xf32>
  %m = peft.use @m : tensor<4xf32>
  %y = peft.dora %x, %w, %a, %b, %m {peft.module = "q", scale = 0.5 : f64, weight_layout = "out_in"} : tensor<3x8xf32>, tensor<4x8xf32>, tensor<2x8xf32>, tensor<4x2xf32>, tensor<4xf32> -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// CHECK:       peft.param @q.weight.merged : tensor<4x8xf32> frozen {peft.computed_by = @merge_adapters}
// CHECK-LABEL: func.func @forward
// CHECK-NEXT:    %[[W:.*]] = peft.use @q.weight.merged
// CHECK-NEXT:    nn.matmul %{{.*}}, %[[W]] {peft.module = "q", transpose_rhs = true} : tensor<3x8xf32>, tensor<4x8xf32> -> tensor<3x4xf32>
// CHECK-LABEL: func.func @merge_adapters()
// CHECK:         %[[BA:.*]] = nn.matmul %{{.*}}, %{{.*}} : tensor<4x2xf32>, tensor<2x8xf32> -> tensor<4x8xf32>
// CHECK:         %[[V:.*]] = nn.add
// CHECK:         %[[SQ:.*]] = nn.mul %[[V]], %[[V]]
// CHECK:         %[[SUM:.*]] = nn.reduce_sum %[[SQ]] axes [1] keepdims : tensor<4x8xf32> -> tensor<4x1xf32>
// CHECK:         %[[N:.*]] = nn.sqrt %[[SUM]]
// CHECK:         %[[MR:.*]] = nn.reshape %{{.*}} : tensor<4xf32> -> tensor<4x1xf32>
// CHECK:         %[[C:.*]] = nn.div %[[MR]], %[[N]]
// CHECK:         %[[WM:.*]] = nn.mul %[[V]], %[[C]] : tensor<4x8xf32>, tensor<4x1xf32> -> tensor<4x8xf32>
// CHECK:         peft.assign @q.weight.merged, %[[WM]]

// -----

// IA3 on a module's output, after its bias: weight columns and the bias
// scale by l. IA3 on a feed-forward module's input: weight rows scale by l.
peft.param @wk : tensor<8x4xf32> frozen init "zeros"
peft.param @bk : tensor<4xf32> frozen init "zeros"
peft.param @lk : tensor<4x1xf32> trainable init "ones" {peft.method = "ia3"}
peft.param @wd : tensor<4x8xf32> frozen init "zeros"
peft.param @ld : tensor<1x4xf32> trainable init "ones" {peft.method = "ia3"}
func.func @forward(%x: tensor<3x8xf32>) -> tensor<3x8xf32> {
  %wk = peft.use @wk : tensor<8x4xf32>
  %bk = peft.use @bk : tensor<4xf32>
  %k = nn.matmul %x, %wk {peft.module = "k"} : tensor<3x8xf32>, tensor<8x4xf32> -> tensor<3x4xf32>
  %kb = nn.add %k, %bk : tensor<3x4xf32>, tensor<4xf32> -> tensor<3x4xf32>
  %lk = peft.use @lk : tensor<4x1xf32>
  %lkf = nn.reshape %lk : tensor<4x1xf32> -> tensor<4xf32>
  %ks = peft.ia3 %kb, %lkf {peft.module = "k"} : tensor<3x4xf32>, tensor<4xf32> -> tensor<3x4xf32>
  %ld = peft.use @ld : tensor<1x4xf32>
  %ldf = nn.reshape %ld : tensor<1x4xf32> -> tensor<4xf32>
  %hs = peft.ia3 %ks, %ldf {peft.module = "down"} : tensor<3x4xf32>, tensor<4xf32> -> tensor<3x4xf32>
  %wd = peft.use @wd : tensor<4x8xf32>
  %y = nn.matmul %hs, %wd {peft.module = "down"} : tensor<3x4xf32>, tensor<4x8xf32> -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// CHECK-DAG:   peft.param @k.weight.merged : tensor<8x4xf32> frozen {peft.computed_by = @merge_adapters}
// CHECK-DAG:   peft.param @k.bias.merged : tensor<4xf32> frozen {peft.computed_by = @merge_adapters}
// CHECK-DAG:   peft.param @down.weight.merged : tensor<4x8xf32> frozen {peft.computed_by = @merge_adapters}
// CHECK-LABEL: func.func @forward
// CHECK-NOT:     peft.ia3
// CHECK:         %[[WK:.*]] = peft.use @k.weight.merged
// CHECK:         %[[K:.*]] = nn.matmul %{{.*}}, %[[WK]] {peft.module = "k"}
// CHECK:         %[[BK:.*]] = peft.use @k.bias.merged
// CHECK:         %[[KB:.*]] = nn.add %[[K]], %[[BK]]
// CHECK:         %[[WD:.*]] = peft.use @down.weight.merged
// CHECK:         nn.matmul %[[KB]], %[[WD]] {peft.module = "down"}
// CHECK-NOT:     peft.use @l
// CHECK-LABEL: func.func @merge_adapters()
// Output scaling of [in, out]: l as a row [1, 4].
// CHECK:         nn.reshape %{{.*}} : tensor<4xf32> -> tensor<1x4xf32>
// CHECK:         %[[MK:.*]] = nn.mul %{{.*}}, %{{.*}} : tensor<8x4xf32>, tensor<1x4xf32> -> tensor<8x4xf32>
// CHECK:         %[[MB:.*]] = nn.mul %{{.*}}, %{{.*}} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
// CHECK:         peft.assign @k.weight.merged, %[[MK]]
// CHECK:         peft.assign @k.bias.merged, %[[MB]]
// Input scaling of [in, out]: l as a column [4, 1].
// CHECK:         nn.reshape %{{.*}} : tensor<4xf32> -> tensor<4x1xf32>
// CHECK:         %[[MD:.*]] = nn.mul %{{.*}}, %{{.*}} : tensor<4x8xf32>, tensor<4x1xf32> -> tensor<4x8xf32>
// CHECK:         peft.assign @down.weight.merged, %[[MD]]

// -----

// A sparse delta: W + scatter(indices, delta) moves into @merge_adapters as
// it is; @forward reads the merged weight and neither the indices nor the
// delta.
peft.param @w : tensor<4x5xf32> frozen init "zeros"
peft.param @i : tensor<3xi64> frozen init "zeros" {peft.method = "sparse"}
peft.param @v : tensor<3xf32> trainable init "zeros" {peft.method = "sparse"}
func.func @forward(%x: tensor<2x5xf32>) -> tensor<2x4xf32> {
  %w = peft.use @w : tensor<4x5xf32>
  %i = peft.use @i : tensor<3xi64>
  %v = peft.use @v : tensor<3xf32>
  %d = peft.sparse_delta %w, %i, %v {peft.module = "fc"} : tensor<4x5xf32>, tensor<3xi64>, tensor<3xf32>
  %y = nn.matmul %x, %d {transpose_rhs = true} : tensor<2x5xf32>, tensor<4x5xf32> -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// CHECK:       peft.param @fc.weight.merged : tensor<4x5xf32> frozen {peft.computed_by = @merge_adapters}
// CHECK-LABEL: func.func @forward
// CHECK-NEXT:    %[[W:.*]] = peft.use @fc.weight.merged : tensor<4x5xf32>
// CHECK-NEXT:    %[[Y:.*]] = nn.matmul %{{.*}}, %[[W]] {transpose_rhs = true}
// CHECK-NEXT:    return %[[Y]]
// CHECK-LABEL: func.func @merge_adapters()
// CHECK-DAG:     %[[W0:.*]] = peft.use @w
// CHECK-DAG:     %[[I:.*]] = peft.use @i
// CHECK-DAG:     %[[V:.*]] = peft.use @v
// CHECK:         %[[M:.*]] = peft.sparse_delta %[[W0]], %[[I]], %[[V]]
// CHECK:         peft.assign @fc.weight.merged, %[[M]] : tensor<4x5xf32>
// CHECK-NEXT:    return
