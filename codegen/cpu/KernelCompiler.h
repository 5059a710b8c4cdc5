//===- KernelCompiler.h - loop kernels -> host code -------*- C++ -*-===//
//
// Loop kernels (LoopEmitter.h) are lowered through MLIR's LLVM dialect
// (scf -> cf; math -> LLVM intrinsics, or libm calls where LLVM has no exact
// intrinsic; arith/cf/func/memref -> llvm with bare-pointer memrefs) to LLVM
// IR, get one ABI wrapper each (runtime/include/peft/KernelABI.h) and are
// optimised by LLVM's O3 pipeline for the host CPU's name and features.
// The result is either an object file that also defines the program globals
// the runtime looks up, or code JIT-compiled into this process (tests).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "codegen/cpu/LoopEmitter.h"
#include "peft/KernelABI.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>
#include <vector>

namespace llvm {
class LLVMContext;
class Module;
namespace orc {
class LLJIT;
} // namespace orc
} // namespace llvm

namespace peft::codegen {

/// The C symbol of the ABI wrapper of loop kernel `name`.
std::string kernelSymbol(llvm::StringRef name);

/// A module holding the loop kernel of every `kern.kernel` function of
/// `module` (same names), and their constant globals. `module` itself is
/// unchanged except that each kernel function gets `kern.extent`.
mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
extractLoopKernels(mlir::ModuleOp module, const LoopEmitOptions &options = {});

/// The names of the loop kernels (`kern.loops` functions) of `loopModule`,
/// in module order.
std::vector<std::string> loopKernelNames(mlir::ModuleOp loopModule);

/// Lowers `loopModule` in place to the LLVM dialect and adds the ABI
/// wrapper `kernelSymbol(name)` of every loop kernel.
mlir::LogicalResult lowerToLLVMDialect(mlir::ModuleOp loopModule);

/// Translates a lowered module to LLVM IR, set up for the host CPU and
/// optimised with the O3 pipeline.
llvm::Expected<std::unique_ptr<llvm::Module>>
translateAndOptimize(mlir::ModuleOp llvmDialectModule,
                     llvm::LLVMContext &context);

/// Writes a relocatable object for the host holding the kernels of
/// `loopModule` (lowered here) and the program globals of KernelABI.h:
/// `peftc_program_data`/`_size` hold `program`, `peftc_kernel_table` one
/// entry per name of `kernelNames` (in that order; each must be a loop
/// kernel of the module) and `peftc_kernel_count`.
llvm::Error emitObjectFile(mlir::ModuleOp loopModule,
                           llvm::ArrayRef<uint8_t> program,
                           llvm::ArrayRef<std::string> kernelNames,
                           llvm::raw_pwrite_stream &out);

/// Loop kernels JIT-compiled into this process (for tests and tools).
class KernelJIT {
public:
  /// Lowers and compiles every loop kernel of `loopModule`.
  static llvm::Expected<std::unique_ptr<KernelJIT>>
  create(mlir::ModuleOp loopModule);
  ~KernelJIT();

  /// One entry per loop kernel, named as in the module, in module order.
  const std::vector<peft_kernel_entry> &kernels() const { return entries_; }
  /// The entry point of kernel `name`, or null.
  peft_kernel_fn lookup(llvm::StringRef name) const;

private:
  KernelJIT() = default;
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  std::vector<std::string> names_;
  std::vector<peft_kernel_entry> entries_;
};

} // namespace peft::codegen
