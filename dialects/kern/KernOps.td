//===- KernOps.td - the kernel-level dialect ---------------*- tablegen -*-===//
//
// What the training IR becomes before code generation (docs/codegen.md):
// GEMMs as library calls with their transposes, scales and epilogue, and
// every other op outlined into a kernel function that `kern.launch` calls.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_KERN_OPS
#define PEFT_KERN_OPS

include "mlir/IR/OpBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kern_Dialect : Dialect {
  let name = "kern";
  let cppNamespace = "::peft::kern";
  let summary = "GEMM library calls and launches of outlined kernels";
  let description = [{
    `kern.gemm` maps 1:1 to a GEMM step of the compiled program (oneDNN on
    the CPU, cuBLASLt on CUDA); `kern.launch` calls a kernel function (a
    `func.func` marked `kern.kernel`) that code generation turns into a
    loop kernel. Discardable attributes of this dialect carry the memory
    plan (`kern.offsets`, `kern.arg_offsets`, `kern.arena_bytes`, ...) and
    the kernel's parallel extent (`kern.extent`).
  }];
  let usePropertiesForAttributes = 0;
}

class Kern_Op<string mnemonic, list<Trait> traits = []>
    : Op<Kern_Dialect, mnemonic, traits>;

def Kern_FloatTensor : StaticShapeTensorOf<[AnyFloat]>;

def Kern_GemmOp : Kern_Op<"gemm", [Pure, AttrSizedOperandSegments]> {
  let summary = "C = alpha·op(A)·op(B) + beta·C (+ bias), then an epilogue";
  let description = [{
    Row-major `op(X) = Xᵀ` when `trans_x`. Rank-2 operands give a [m, n]
    result; a rank-3 operand makes the GEMM batched ([batch, m, n]); a
    rank-2 operand beside a rank-3 one is broadcast over the batch. `c`
    (the accumulator, read with weight `beta`) has the result's type; `bias`
    is a [n] row vector added to every row before the `epilogue`
    (`none`, `relu`, `gelu_erf`, `gelu_tanh`).

    ```mlir
    %y = kern.gemm %x, %w bias %b {trans_b = true, epilogue = "gelu_erf"}
        : (tensor<16x32xf32>, tensor<64x32xf32>, tensor<64xf32>)
        -> tensor<16x64xf32>
    ```
  }];
  let arguments = (ins Kern_FloatTensor:$a, Kern_FloatTensor:$b,
                   Optional<Kern_FloatTensor>:$c,
                   Optional<Kern_FloatTensor>:$bias,
                   DefaultValuedAttr<BoolAttr, "false">:$trans_a,
                   DefaultValuedAttr<BoolAttr, "false">:$trans_b,
                   DefaultValuedAttr<F64Attr, "1.0">:$alpha,
                   DefaultValuedAttr<F64Attr, "0.0">:$beta,
                   DefaultValuedStrAttr<StrAttr, "none">:$epilogue);
  let results = (outs Kern_FloatTensor:$result);
  let assemblyFormat = [{
    $a `,` $b (`acc` $c^)? (`bias` $bias^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The GEMM's dimensions: batch (1 when unbatched), m, n, k.
    int64_t getBatch();
    int64_t getM();
    int64_t getN();
    int64_t getK();
  }];
}

def Kern_LaunchOp : Kern_Op<"launch", [Pure,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "Runs an outlined kernel function";
  let description = [{
    Calls `callee`, a `func.func` with the unit attribute `kern.kernel`
    whose signature matches the operand and result types. The callee's
    arguments are the tensors the kernel reads, its results the tensors it
    writes.

    ```mlir
    %y = kern.launch @k3(%x, %b) : (tensor<4x8xf32>, tensor<8xf32>)
        -> tensor<4x8xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$callee, Variadic<AnyType>:$args);
  let results = (outs Variadic<AnyType>:$results);
  let assemblyFormat = [{
    $callee `(` $args `)` attr-dict `:` functional-type($args, results)
  }];
}

#endif // PEFT_KERN_OPS
