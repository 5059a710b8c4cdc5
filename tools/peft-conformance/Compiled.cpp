//===- Compiled.cpp - conformance tests through compiled code -------------===//
//
// `peft-conformance --compiled`: every node test that passes on the
// reference evaluator is compiled the way peftc compiles a program
// (peft-decompose, peft-lower-gemms, peft-outline-kernels, loop emission,
// peft-plan-memory, program emission) and run by the runtime's Session on
// JIT-compiled kernels. To keep the LLVM work affordable, the loop kernels
// of a whole batch of tests (renamed apart) are JIT-compiled together; a
// batch whose compilation fails is retried test by test so one bad kernel
// fails only its own test.
//
//===----------------------------------------------------------------------===//
#include "Compiled.h"

#include "codegen/cpu/KernelCompiler.h"
#include "codegen/cpu/LoopEmitter.h"
#include "codegen/program/ProgramEmitter.h"
#include "dialects/kern/KernOps.h"
#include "passes/Passes.h"
#include "peft/Program.h"
#include "peft/runtime.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace peft::conformance {
namespace {

/// One test on its way through the compiler.
struct Prepared {
  const CompiledCase *test = nullptr;
  OwningOpRef<ModuleOp> module, loops;
  std::string program; // encoded program::Program
  std::string error;   // set when the test failed before running
};

/// Imports and lowers one test; kernel functions are renamed with `prefix`
/// so the loop kernels of many tests can share one JIT.
void prepare(MLIRContext &context, const CompiledCase &test,
             const std::string &prefix, Prepared &out) {
  out.test = &test;
  std::string diag;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
    if (diag.empty())
      diag = d.str();
    return success();
  });
  out.module =
      onnx_import::importOnnxModel(context, test.modelPath, test.options);
  if (!out.module) {
    out.error = "import: " + diag;
    return;
  }
  ModuleOp module = *out.module;
  {
    PassManager pm(&context);
    pm.addPass(createDecompose());
    pm.addPass(createLowerGemms());
    pm.addPass(createOutlineKernels());
    if (failed(pm.run(module))) {
      out.error = "lowering: " + diag;
      return;
    }
  }
  SmallVector<func::FuncOp> kernels;
  for (auto fn : module.getOps<func::FuncOp>())
    if (fn->hasAttr(codegen::kKernelAttr))
      kernels.push_back(fn);
  for (func::FuncOp fn : kernels) {
    auto name = StringAttr::get(&context, prefix + fn.getSymName().str());
    if (failed(SymbolTable::replaceAllSymbolUses(fn, name, module))) {
      out.error = "renaming kernel @" + fn.getSymName().str();
      return;
    }
    fn.setSymName(name);
  }
  FailureOr<OwningOpRef<ModuleOp>> loops = codegen::extractLoopKernels(module);
  if (failed(loops)) {
    out.error = "loop emission: " + diag;
    return;
  }
  out.loops = std::move(*loops);
  {
    PassManager pm(&context);
    pm.addPass(createPlanMemory());
    if (failed(pm.run(module))) {
      out.error = "memory plan: " + diag;
      return;
    }
  }
  FailureOr<program::Program> program = codegen::emitProgram(module);
  if (failed(program)) {
    out.error = "program emission: " + diag;
    return;
  }
  out.program = program::encodeProgram(*program);
}

/// JIT-compiles the loop kernels of `tests` (those not failed yet).
llvm::Expected<std::unique_ptr<codegen::KernelJIT>>
compileKernels(MLIRContext &context, ArrayRef<Prepared *> tests) {
  OwningOpRef<ModuleOp> all = ModuleOp::create(UnknownLoc::get(&context));
  OpBuilder b(&context);
  b.setInsertionPointToEnd(all->getBody());
  for (Prepared *p : tests)
    for (Operation &op : p->loops->getBody()->getOperations())
      b.clone(op);
  std::string diag;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
    if (diag.empty())
      diag = d.str();
    return success();
  });
  auto jit = codegen::KernelJIT::create(*all);
  if (!jit)
    return llvm::createStringError(llvm::toString(jit.takeError()) +
                                   (diag.empty() ? "" : ": " + diag));
  return jit;
}

/// Runs one prepared test on the runtime; returns "" or what went wrong.
std::string execute(const Prepared &p, const codegen::KernelJIT &jit,
                    const CloseFn &close) {
  std::string error;
  auto program = rt::Program::fromParts(p.program, jit.kernels(), error);
  if (!program)
    return "program: " + error;
  auto session = rt::Session::create(program, rt::Options(), error);
  if (!session)
    return "session: " + error;
  rt::Batch batch;
  for (const auto &[name, t] : p.test->inputs)
    batch[name] = t;
  std::vector<Tensor> results;
  if (!session->run(p.test->options.functionName, batch, /*step=*/1, results,
                    error))
    return "run: " + error;
  if (results.size() != p.test->expected.size())
    return "output count differs";
  for (size_t i = 0; i < results.size(); ++i) {
    std::string why;
    if (!close(results[i], p.test->expected[i], why))
      return "output " + std::to_string(i) + ": " + why;
  }
  return "";
}

} // namespace

void runCompiled(const std::vector<CompiledCase> &tests, size_t batchSize,
                 const CloseFn &close, bool verbose, int &passed, int &failed) {
  auto report = [&](const std::string &name, const std::string &why) {
    if (why.empty()) {
      ++passed;
      if (verbose)
        llvm::outs() << "COMPILED PASS " << name << "\n";
    } else {
      ++failed;
      llvm::outs() << "COMPILED FAIL " << name << ": " << why << "\n";
    }
  };
  batchSize = std::max<size_t>(batchSize, 1);
  for (size_t begin = 0; begin < tests.size(); begin += batchSize) {
    size_t end = std::min(tests.size(), begin + batchSize);
    DialectRegistry registry;
    onnx_import::registerImportDialects(registry);
    MLIRContext context(registry);
    context.loadDialect<arith::ArithDialect, func::FuncDialect,
                        kern::KernDialect, math::MathDialect,
                        memref::MemRefDialect, scf::SCFDialect>();
    context.printOpOnDiagnostic(false);
    std::vector<Prepared> prepared(end - begin);
    std::vector<Prepared *> ready;
    for (size_t i = begin; i < end; ++i) {
      Prepared &p = prepared[i - begin];
      prepare(context, tests[i], "t" + std::to_string(i) + "_", p);
      if (p.error.empty())
        ready.push_back(&p);
    }
    auto jit = compileKernels(context, ready);
    if (jit) {
      for (Prepared &p : prepared)
        report(p.test->name,
               p.error.empty() ? execute(p, **jit, close) : p.error);
      continue;
    }
    llvm::consumeError(jit.takeError());
    // Find the test(s) whose kernels do not compile.
    for (Prepared &p : prepared) {
      if (!p.error.empty()) {
        report(p.test->name, p.error);
        continue;
      }
      Prepared *one[] = {&p};
      auto single = compileKernels(context, one);
      if (!single) {
        report(p.test->name,
               "kernel compilation: " + llvm::toString(single.takeError()));
        continue;
      }
      report(p.test->name, execute(p, **single, close));
    }
  }
}

} // namespace peft::conformance
