//===- peftc.cpp - the peftc compiler driver ------------------------------===//
#include "frontends/onnx/Importer.h"
#include "frontends/spec/PeftSpec.h"
#include "frontends/spec/TargetResolution.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"
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
static cl::OptionCategory mlirCategory(
    "MLIR options (every MLIR/LLVM option works; --help-hidden lists them)");

/// MLIR registers its options in the general category, which
/// HideUnrelatedOptions hides; these are the ones a peftc user reaches for.
static void showMLIROptions() {
  static const char *names[] = {"mlir-print-ir-after-all",
                                "mlir-print-ir-before-all",
                                "mlir-print-ir-after-change",
                                "mlir-print-ir-after-failure",
                                "mlir-print-ir-module-scope",
                                "mlir-print-debuginfo",
                                "mlir-print-op-generic",
                                "mlir-elide-elementsattrs-if-larger",
                                "mlir-timing",
                                "mlir-pass-statistics"};
  auto &options = cl::getRegisteredOptions();
  for (const char *name : names) {
    auto it = options.find(name);
    if (it != options.end())
      it->second->addCategory(mlirCategory);
  }
}
static cl::opt<std::string> inputFile(cl::Positional,
                                      cl::desc("<model.onnx | model.onnxtext>"),
                                      cl::cat(peftcCategory));
static cl::opt<std::string>
    outputFile("o", cl::desc("Output file (default: stdout)"),
               cl::value_desc("file"), cl::init("-"), cl::cat(peftcCategory));
enum class EmitKind { MLIR };
static cl::opt<EmitKind>
    emit("emit", cl::desc("What to produce"), cl::init(EmitKind::MLIR),
         cl::values(clEnumValN(EmitKind::MLIR, "mlir", "the IR after import")),
         cl::cat(peftcCategory));
static cl::list<std::string> inputShapes(
    "input-shape",
    cl::desc("Static shape of a graph input, e.g. input_ids=8x128 (repeatable, "
             "or comma-separated)"),
    cl::value_desc("name=DxD"), cl::cat(peftcCategory));
static cl::opt<std::string>
    specFile("spec",
             cl::desc("PEFT spec: YAML, or a PEFT adapter_config.json "
                      "(docs/spec.md); its training.inputs give input shapes"),
             cl::value_desc("file"), cl::cat(peftcCategory));
static cl::opt<bool> foldFloat(
    "fold-float",
    cl::desc("Also fold floating-point computations on constants at import "
             "(rounds them to their declared type; used by kernel tests)"),
    cl::cat(peftcCategory));
static cl::opt<bool> printSpec(
    "print-spec",
    cl::desc("Print the spec with every default, and the modules each method "
             "selects, as JSON"),
    cl::cat(peftcCategory));
static cl::opt<bool> listTargets(
    "list-targets",
    cl::desc("Print the model's module paths (what target_modules matches) "
             "with their op, shape and layer index"),
    cl::cat(peftcCategory));
static cl::opt<bool> printTrainable(
    "print-trainable",
    cl::desc("Print PEFT's 'trainable params: N || all params: M || "
             "trainable%: P' for the spec"),
    cl::cat(peftcCategory));
static cl::opt<std::string> initAdapter(
    "init-adapter",
    cl::desc("Start the adapters from this PEFT adapter (save_pretrained "
             "directory) instead of the spec's initialisation"),
    cl::value_desc("dir"), cl::cat(peftcCategory));

/// Resolves the spec on the imported model (errors point into the spec
/// file) and attaches it, so every later pass reads it from the IR.
static LogicalResult attachSpec(ModuleOp module,
                                const peft::spec::PeftSpec &spec,
                                peft::spec::ResolvedTargets &resolved) {
  std::string error;
  if (failed(peft::analysis::attachSpec(module, spec, resolved, error))) {
    if (!error.empty())
      llvm::errs() << error << "\n";
    return failure();
  }
  for (const std::string &warning : resolved.warnings)
    llvm::errs() << warning << "\n";
  return success();
}

/// The training pipeline as far as it goes: adapters, freezing, the loss.
static void addTrainingPasses(PassManager &pm, bool withLoss) {
  peft::InsertAdaptersOptions insert;
  insert.initAdapter = initAdapter;
  pm.addPass(peft::createInsertAdapters(insert));
  pm.addPass(peft::createFreezeParams());
  if (withLoss)
    pm.addPass(peft::createBuildLoss());
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // Pass names for --mlir-print-ir-before/after=<pass>.
  peft::registerPeftPasses();
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  cl::SetVersionPrinter([](llvm::raw_ostream &os) {
    os << "peftc " << PEFTC_VERSION << " (LLVM/MLIR " << LLVM_VERSION_STRING
       << ")\n";
  });
  showMLIROptions();
  cl::HideUnrelatedOptions({&peftcCategory, &mlirCategory});
  cl::ParseCommandLineOptions(argc, argv,
                              "peftc: compiles an ONNX model and a PEFT spec "
                              "into a training program\n");
  if (inputFile.empty()) {
    llvm::errs() << "peftc: error: no input model; usage: peftc model.onnx "
                    "[--input-shape name=DxD] [--emit=mlir] [-o out]\n";
    return 1;
  }

  peft::onnx_import::ImportOptions options;
  options.foldFloat = foldFloat;
  for (const std::string &s : inputShapes) {
    std::string err;
    if (!peft::onnx_import::parseInputShapes(s, options.inputShapes, err)) {
      llvm::errs() << "peftc: error: " << err << "\n";
      return 1;
    }
  }
  peft::spec::PeftSpec spec;
  if (!specFile.empty()) {
    std::string err;
    if (!peft::spec::parseSpecFile(specFile, spec, err)) {
      llvm::errs() << err << "\n";
      return 1;
    }
    // The spec's shapes also name data the model does not take (labels):
    // the importer uses those of graph inputs, --input-shape wins.
    for (const peft::spec::InputShape &input : spec.training.inputs)
      options.dataShapes[input.name] = input.dims;
  } else if (printSpec || printTrainable || !initAdapter.empty()) {
    llvm::errs() << "peftc: error: --"
                 << (printSpec        ? "print-spec"
                     : printTrainable ? "print-trainable"
                                      : "init-adapter")
                 << " needs --spec\n";
    return 1;
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

  if (listTargets) {
    FailureOr<peft::analysis::ModuleTable> table =
        peft::analysis::ModuleTable::build(*module);
    if (failed(table))
      return 1;
    peft::analysis::printModuleTable(*table, llvm::outs());
    return 0;
  }
  if (!specFile.empty()) {
    peft::spec::ResolvedTargets resolved;
    if (failed(attachSpec(*module, spec, resolved)))
      return 1;
    if (printSpec) {
      // One JSON object holding both documents, each indented one level.
      auto nested = [](const std::string &json) {
        std::string out;
        for (char c : llvm::StringRef(json).rtrim())
          out += c == '\n' ? std::string("\n  ") : std::string(1, c);
        return out;
      };
      llvm::outs() << "{\n  \"spec\": " << nested(peft::spec::toJson(spec))
                   << ",\n  \"targets\": "
                   << nested(peft::spec::toJson(resolved)) << "\n}\n";
      return 0;
    }
    PassManager training(&context);
    if (failed(applyPassManagerCLOptions(training)))
      return 1;
    addTrainingPasses(training, /*withLoss=*/!printTrainable);
    if (failed(training.run(*module)))
      return 1;
    if (printTrainable) {
      FailureOr<peft::analysis::TrainableCount> count =
          peft::analysis::countTrainable(*module);
      if (failed(count))
        return 1;
      llvm::outs() << count->line() << "\n";
      return 0;
    }
  }

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
