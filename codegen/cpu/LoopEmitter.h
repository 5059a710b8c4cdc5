// API-READY
//===- LoopEmitter.h - loop kernels from kernel functions ---*- C++ -*-===//
//
// A kernel function (`func.func` with the unit attribute `kern.kernel`,
// tensor arguments and results) becomes a *loop kernel*: a `func.func` on
// flat memrefs whose body is portable scalar code, so the CPU backend lowers
// it through the LLVM dialect and the CUDA backend prints the same body as
// CUDA C. See docs/codegen.md, "Kernel representation".
//
//   func.func @k3(%a: memref<32xf32>, %b: memref<8xf32>,   // arguments
//                 %r: memref<32xf32>,                       // then results
//                 %begin: index, %end: index)
//       attributes {kern.loops, kern.extent = 32 : i64} {
//     scf.for %i = %begin to %end step %c1 {                // kern.parallel
//       ... arith / math / scf / memref.load / memref.store ...
//     } {kern.parallel}
//     return
//   }
//
// Every buffer is a rank-1 static memref over one dense row-major buffer
// (0-d tensors get memref<1x...>), holding the *storage type* of its tensor's
// element type. Scalar code runs in the *compute type* (see below).
//
// Two registries, filled per op family (codegen/cpu/<Family>Emitters.cpp):
//   - scalar emitters: the per-element formula of an elementwise op (nn
//     unary/binary/compare/where/cast, peft.adamw/sgd, ...). The fused
//     elementwise kernel emitter calls them for every op of a fused group.
//   - loop emitters: the whole loop nest of a kernel whose body is one
//     non-elementwise op (reductions, softmax, shape ops, conv, ...).
//
// Adding a family: write `void register<Family>Emitters(EmitterRegistry &)`
// in <Family>Emitters.cpp (CMake picks up every *Emitters.cpp) and add the
// line `PEFT_EMITTER_FAMILY(<Family>)` to EmitterFamilies.def.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/StringMap.h"

#include <functional>

namespace mlir::func {
class FuncOp;
} // namespace mlir::func

namespace peft::codegen {

//===----------------------------------------------------------------------===//
// Attribute names
//===----------------------------------------------------------------------===//

/// Unit attribute of an outlined tensor-level kernel function.
inline constexpr llvm::StringLiteral kKernelAttr = "kern.kernel";
/// Unit attribute of a loop kernel (the memref form).
inline constexpr llvm::StringLiteral kLoopsAttr = "kern.loops";
/// i64 attribute: the extent of the flattened parallel dimension. Set on the
/// loop kernel and, by the loop emission, on the tensor-level kernel too.
inline constexpr llvm::StringLiteral kExtentAttr = "kern.extent";
/// Unit attribute of the one scf.for of a loop kernel that iterates the
/// parallel dimension over [begin, end).
inline constexpr llvm::StringLiteral kParallelAttr = "kern.parallel";

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

/// What a buffer of tensor element type `t` holds: signless integers of the
/// same width (ui8 -> i8), bool (i1) as i8 (0 or 1, as the runtime's
/// tensors); floats unchanged.
mlir::Type storageType(mlir::Type t);
/// What scalar code computes in, as the reference evaluator does for
/// integers: every integer type but i1 widens to i64 (sign-extended, or
/// zero-extended when unsigned) and wraps to its width on store; i1 stays
/// i1; f16/bf16 compute in f32; f32 in f32; f64 in f64.
mlir::Type computeType(mlir::Type t);
bool isUnsignedInteger(mlir::Type t);
/// The element type and static shape of a ranked tensor value.
mlir::Type elementTypeOf(mlir::Value tensor);
llvm::ArrayRef<int64_t> shapeOf(mlir::Value tensor);
int64_t numElementsOf(llvm::ArrayRef<int64_t> shape);
/// Row-major strides of `shape` (elements).
llvm::SmallVector<int64_t> rowMajorStrides(llvm::ArrayRef<int64_t> shape);
/// The flat buffer type of a tensor type: memref<max(numel,1) x storage>.
mlir::MemRefType bufferType(mlir::RankedTensorType t);

//===----------------------------------------------------------------------===//
// Scalar helpers (all return values in compute types)
//===----------------------------------------------------------------------===//

mlir::Value indexConst(mlir::OpBuilder &b, mlir::Location loc, int64_t v);
/// A constant of compute type `type` (float or integer, i1 included).
mlir::Value scalarConst(mlir::OpBuilder &b, mlir::Location loc,
                        mlir::Type computeTy, double v);
mlir::Value intConst(mlir::OpBuilder &b, mlir::Location loc,
                     mlir::Type computeTy, int64_t v);

/// Loads element `index` (an index value) of `buffer` holding tensor
/// element type `elem`, converted to computeType(elem).
mlir::Value loadElement(mlir::OpBuilder &b, mlir::Location loc,
                        mlir::Value buffer, mlir::Value index, mlir::Type elem);
/// Stores `v` (in computeType(elem)) at `index` of `buffer`, narrowing to
/// the storage type. A null `buffer` (a result nobody reads) stores nothing.
void storeElement(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                  mlir::Value buffer, mlir::Value index, mlir::Type elem);

/// nn.cast semantics (the runtime's Tensor::castTo) on a compute value of
/// tensor element type `from` to tensor element type `to`: float to integer
/// truncates toward zero, saturates, NaN gives 0; anything to i1 is `!= 0`;
/// integers wrap; floats round to nearest even.
mlir::Value castScalar(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                       mlir::Type from, mlir::Type to);
/// Wraps an integer compute value to the width of tensor element type
/// `elem` (and extends it back), or rounds a float one to f16/bf16: what
/// storing and reloading it would give. emitScalarOp applies it to results.
mlir::Value normalizeScalar(mlir::OpBuilder &b, mlir::Location loc,
                            mlir::Value v, mlir::Type elem);

/// Row-major coordinates of `linear` (index) in `shape` (div/rem by
/// constants; size-1 dims give constant 0).
llvm::SmallVector<mlir::Value> delinearize(mlir::OpBuilder &b,
                                           mlir::Location loc,
                                           mlir::Value linear,
                                           llvm::ArrayRef<int64_t> shape);
/// sum(coords[d] * strides[d]) as an index; zero strides are skipped.
mlir::Value linearize(mlir::OpBuilder &b, mlir::Location loc,
                      mlir::ValueRange coords, llvm::ArrayRef<int64_t> strides);
/// Numpy broadcasting: the linear index into an operand of shape `operand`
/// of element `resultLinear` of the broadcast result of shape `result`
/// (operand dims align to the right; its size-1 dims read index 0). Returns
/// `resultLinear` itself when the shapes have the same element count.
mlir::Value broadcastIndex(mlir::OpBuilder &b, mlir::Location loc,
                           mlir::Value resultLinear,
                           llvm::ArrayRef<int64_t> result,
                           llvm::ArrayRef<int64_t> operand);

/// `for (i = lb; i < ub; ++i)` carrying `inits`; `body` returns the values
/// yielded for the next iteration (as many as `inits`). Returns the loop's
/// results.
using LoopBodyFn = llvm::function_ref<llvm::SmallVector<mlir::Value>(
    mlir::OpBuilder &, mlir::Location, mlir::Value iv, mlir::ValueRange iters)>;
mlir::ValueRange forLoop(mlir::OpBuilder &b, mlir::Location loc, mlir::Value lb,
                         mlir::Value ub, mlir::ValueRange inits,
                         LoopBodyFn body);
mlir::ValueRange forLoop(mlir::OpBuilder &b, mlir::Location loc, int64_t lb,
                         int64_t ub, mlir::ValueRange inits, LoopBodyFn body);

/// NaN-propagating max/min (nn.max/nn.min, reduce_max/min) on compute
/// values of tensor element type `elem` (unsigned compare for unsigned).
mlir::Value emitMax(mlir::OpBuilder &b, mlir::Location loc, mlir::Value x,
                    mlir::Value y, mlir::Type elem);
mlir::Value emitMin(mlir::OpBuilder &b, mlir::Location loc, mlir::Value x,
                    mlir::Value y, mlir::Type elem);

//===----------------------------------------------------------------------===//
// Scalar emitters
//===----------------------------------------------------------------------===//

/// Emits the per-element formula of elementwise `op`: `operands` are its
/// operands at one element, each in computeType of its tensor element type
/// (0-d operands such as peft.adamw's lr and step included); appends one
/// value per op result, in computeType of the result's element type.
using ScalarEmitterFn = std::function<mlir::LogicalResult(
    mlir::OpBuilder &b, mlir::Location loc, mlir::Operation *op,
    mlir::ValueRange operands, llvm::SmallVectorImpl<mlir::Value> &results)>;

//===----------------------------------------------------------------------===//
// Loop emitters
//===----------------------------------------------------------------------===//

/// What a loop emitter gets: the op, the buffers of its operands and
/// results, and one call to `parallel` that builds the parallel loop.
class LoopEmitContext {
public:
  virtual ~LoopEmitContext() = default;
  virtual mlir::Operation *op() const = 0;
  mlir::Location loc() const { return op()->getLoc(); }
  /// Positioned in the loop kernel's entry block, before the parallel loop:
  /// for loop-invariant values.
  virtual mlir::OpBuilder &builder() = 0;
  /// The flat buffer of tensor `v`: a kernel argument, an nn.constant
  /// (materialised as a constant memref.global), or a result of op() that
  /// the kernel returns. Null for a result of op() the kernel does not
  /// return (storeElement ignores null buffers).
  virtual mlir::Value buffer(mlir::Value v) = 0;
  mlir::Value operandBuffer(unsigned i) { return buffer(op()->getOperand(i)); }
  mlir::Value resultBuffer(unsigned i) { return buffer(op()->getResult(i)); }
  /// Builds `scf.for %iv = begin to end {kern.parallel}` over the parallel
  /// dimension of extent `extent` (the runtime calls the kernel with
  /// 0 <= begin <= end <= extent) and fills its body with `body`. Call it
  /// exactly once; iterations must be independent (no two write one
  /// element with different values).
  using BodyFn = llvm::function_ref<mlir::LogicalResult(
      mlir::OpBuilder &, mlir::Location, mlir::Value iv)>;
  virtual mlir::LogicalResult parallel(int64_t extent, BodyFn body) = 0;
};

using LoopEmitterFn = std::function<mlir::LogicalResult(LoopEmitContext &)>;

//===----------------------------------------------------------------------===//
// Registry
//===----------------------------------------------------------------------===//

class EmitterRegistry {
public:
  /// The registry with every family of EmitterFamilies.def registered.
  static const EmitterRegistry &instance();

  void addScalar(llvm::StringRef opName, ScalarEmitterFn fn);
  void addLoop(llvm::StringRef opName, LoopEmitterFn fn);
  const ScalarEmitterFn *lookupScalar(llvm::StringRef opName) const;
  const LoopEmitterFn *lookupLoop(llvm::StringRef opName) const;

private:
  llvm::StringMap<ScalarEmitterFn> scalar_;
  llvm::StringMap<LoopEmitterFn> loop_;
};

#define PEFT_EMITTER_FAMILY(Family)                                            \
  void register##Family##Emitters(EmitterRegistry &registry);
#include "codegen/cpu/EmitterFamilies.def"
#undef PEFT_EMITTER_FAMILY

/// Emits the scalar formula of elementwise `op` through the registry
/// (errors name the op when it has no scalar emitter).
mlir::LogicalResult emitScalarOp(mlir::OpBuilder &b, mlir::Location loc,
                                 mlir::Operation *op, mlir::ValueRange operands,
                                 llvm::SmallVectorImpl<mlir::Value> &results);

//===----------------------------------------------------------------------===//
// Kernel functions -> loop kernels
//===----------------------------------------------------------------------===//

struct LoopEmitOptions {
  /// Fused elementwise kernels: the parallel dimension runs over the outer
  /// dims of the iteration space times chunks of at most this many elements
  /// of its inner run (the trailing dims along which every operand is
  /// contiguous or broadcast), each chunk an inner loop that vectorises.
  /// 1 gives one element per parallel iteration (what a GPU wants).
  int64_t chunk = 1024;
};

/// Builds the loop kernel of tensor-level kernel function `kernel` next to
/// it in its module, named `name`, and sets `kern.extent` on both. Fails
/// (with an error on the op) when an op has no emitter.
mlir::FailureOr<mlir::func::FuncOp>
emitLoopKernel(mlir::func::FuncOp kernel, llvm::StringRef name,
               const LoopEmitOptions &options = {});

/// Replaces every `kern.kernel` function of `module` by its loop kernel of
/// the same name (the peft-emit-loops pass).
mlir::LogicalResult emitLoopKernels(mlir::ModuleOp module,
                                    const LoopEmitOptions &options = {});

} // namespace peft::codegen
