//===- peftc.cpp - the peftc compiler driver --------------------------------===//
#include "frontends/onnx/Importer.h"
#include "tools/Version.h"
#include "tools/common/Diagnostics.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"

#include "mlir/Support/FileUtilities.h"

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory peftcCategory("peftc options");
static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<model.onnx | model.onnxtext>"),
                                      cl::cat(peftcCategory));
static cl::opt<std::string> outputFile("o", cl::desc("Output file (default: stdout)"),
                                       cl::value_desc("file"), cl::init("-"),
                                       cl::cat(peftcCategory));
enum class EmitKind { MLIR };
static cl::opt<EmitKind> emit(
    "emit", cl::desc("What to produce"), cl::init(EmitKind::MLIR),
    cl::values(clEnumValN(EmitKind::MLIR, "mlir", "the IR after import")),
    cl::cat(peftcCategory));
static cl::list<std::string> inputShapes(
    "input-shape",
    cl::desc("Static shape of a graph input, e.g. input_ids=8x128 (repeatable, "
             "or comma-separated)"),
    cl::value_desc("name=DxD"), cl::cat(peftcCategory));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  cl::SetVersionPrinter([](llvm::raw_ostream &os) {
    os << "peftc " << PEFTC_VERSION << " (LLVM/MLIR " << LLVM_VERSION_STRING << ")\n";
  });
  cl::HideUnrelatedOptions({&peftcCategory});
  cl::ParseCommandLineOptions(
      argc, argv,
      "peftc: compiles an ONNX model and a PEFT spec into a training program\n");
  if (inputFile.empty()) {
    llvm::errs() << "peftc: error: no input model; usage: peftc model.onnx "
                    "[--input-shape name=DxD] [--emit=mlir] [-o out]\n";
    return 1;
  }

  peft::onnx_import::ImportOptions options;
  for (const std::string &s : inputShapes) {
    std::string err;
    if (!peft::onnx_import::parseInputShapes(s, options.inputShapes, err)) {
      llvm::errs() << "peftc: error: " << err << "\n";
      return 1;
    }
  }

  MLIRContext context;
  context.printOpOnDiagnostic(false);
  peft::tools::UserDiagnosticHandler diag(&context, "peftc");
  OwningOpRef<ModuleOp> module =
      peft::onnx_import::importOnnxModel(context, inputFile, options);
  if (!module)
    return 1;

  PassManager pm(&context);
  if (failed(applyPassManagerCLOptions(pm)))
    return 1;
  pm.addPass(createCanonicalizerPass());
  if (failed(pm.run(*module)))
    return 1;

  std::string err;
  auto out = openOutputFile(outputFile, &err);
  if (!out) {
    llvm::errs() << "peftc: error: " << err << "\n";
    return 1;
  }
  module->print(out->os());
  out->keep();
  return 0;
}
