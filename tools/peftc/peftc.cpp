//===- peftc.cpp - the peftc compiler driver ------------------------------===//
#include "frontends/onnx/Importer.h"
#include "frontends/spec/AdapterConfig.h"
#include "frontends/spec/PeftSpec.h"
#include "frontends/spec/TargetResolution.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"
#include "tools/Version.h"
#include "tools/common/Diagnostics.h"
#include "tools/peftc/Pipeline.h"
#ifdef PEFTC_HAVE_COMPILE
#include "tools/peftc/Compile.h"
#endif
#include "llvm/Support/FileSystem.h"

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
enum class EmitKind { MLIR, Trainer, Shared, Object };
static cl::opt<EmitKind> emit(
    "emit",
    cl::desc("What to produce (default: a trainer when --spec and -o are "
             "given and the output name does not end in .mlir, else the IR)"),
    cl::init(EmitKind::MLIR),
    cl::values(clEnumValN(EmitKind::MLIR, "mlir",
                          "the IR (with --spec: after --stage)"),
               clEnumValN(EmitKind::Trainer, "trainer",
                          "a training executable (needs --spec and -o)"),
               clEnumValN(EmitKind::Shared, "shared",
                          "a shared object for peft::rt::Program::loadShared"),
               clEnumValN(EmitKind::Object, "object",
                          "the program and kernels as one relocatable object")),
    cl::cat(peftcCategory));
static cl::opt<bool> printMemoryPlan(
    "print-memory-plan",
    cl::desc("When compiling, print the arena's peak bytes and the sum of all "
             "buffers"),
    cl::cat(peftcCategory));
static cl::opt<bool>
    keepObject("keep-object",
               cl::desc("Keep the object file beside the output (<output>.o)"),
               cl::cat(peftcCategory));
static cl::opt<peft::driver::Stage> stage(
    "stage",
    cl::desc("With --spec, where the training pipeline stops (default: "
             "train)"),
    cl::init(peft::driver::Stage::Train),
    cl::values(clEnumValN(peft::driver::Stage::Adapters, "adapters",
                          "insert-adapters, freeze: @forward with adapters"),
               clEnumValN(peft::driver::Stage::Loss, "loss",
                          "+ build-loss: @loss"),
               clEnumValN(peft::driver::Stage::Train, "train",
                          "+ differentiate, optimizer: @train_step")),
    cl::cat(peftcCategory));
static cl::opt<int64_t> totalSteps(
    "total-steps",
    cl::desc("Optimizer steps of the run, for a linear or cosine schedule "
             "whose spec leaves total_steps unset"),
    cl::value_desc("N"), cl::init(0), cl::cat(peftcCategory));
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
static cl::opt<bool> printStepStats(
    "print-step-stats",
    cl::desc("Print the training step's forward and backward GEMMs, FLOPs and "
             "kept activation bytes (the peft-step-stats pass)"),
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
    // the importer uses those of graph inputs, --input-shape wins. Prompt
    // tuning compiles the model at T + P positions (spec::importShape).
    for (const peft::spec::InputShape &input : spec.training.inputs)
      options.dataShapes[input.name] = peft::spec::importShape(spec, input);
  } else if (printSpec || printTrainable || printStepStats ||
             !initAdapter.empty() || stage.getNumOccurrences() ||
             totalSteps.getNumOccurrences()) {
    llvm::errs() << "peftc: error: --"
                 << (printSpec                   ? "print-spec"
                     : printTrainable            ? "print-trainable"
                     : printStepStats            ? "print-step-stats"
                     : !initAdapter.empty()      ? "init-adapter"
                     : stage.getNumOccurrences() ? "stage"
                                                 : "total-steps")
                 << " needs --spec\n";
    return 1;
  }
  if (totalSteps < 0) {
    llvm::errs() << "peftc: error: --total-steps must be >= 0, got "
                 << totalSteps << "\n";
    return 1;
  }

  EmitKind emitKind = emit;
  if (!emit.getNumOccurrences() && !specFile.empty() && outputFile != "-" &&
      !llvm::StringRef(outputFile).ends_with(".mlir") && !printSpec &&
      !printTrainable && !printStepStats && !listTargets)
    emitKind = EmitKind::Trainer;
  bool compiling = emitKind != EmitKind::MLIR;
  if (compiling && (specFile.empty() || outputFile == "-")) {
    llvm::errs() << "peftc: error: compiling a trainer or program needs "
                    "--spec and -o <file>\n";
    return 1;
  }
  if (compiling && stage != peft::driver::Stage::Train) {
    llvm::errs() << "peftc: error: a program is compiled from the whole "
                    "training step; drop --stage\n";
    return 1;
  }
  peft::spec::ResolvedTargets resolved;

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
    peft::driver::PipelineOptions pipeline;
    pipeline.initAdapter = initAdapter;
    pipeline.totalSteps = totalSteps;
    // Counting trainable params needs the adapters only.
    pipeline.stage = printTrainable ? peft::driver::Stage::Adapters : stage;
    peft::driver::buildTrainingPipeline(training, pipeline);
    if (printStepStats) {
      if (pipeline.stage != peft::driver::Stage::Train) {
        llvm::errs() << "peftc: error: --print-step-stats needs the whole "
                        "training step (--stage=train)\n";
        return 1;
      }
      training.addPass(peft::createStepStats());
      return failed(training.run(*module)) ? 1 : 0;
    }
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

  if (compiling) {
#ifdef PEFTC_HAVE_COMPILE
    peft::driver::CompileOptions compile;
    compile.kind =
        emitKind == EmitKind::Shared   ? peft::driver::OutputKind::Shared
        : emitKind == EmitKind::Object ? peft::driver::OutputKind::Object
                                       : peft::driver::OutputKind::Trainer;
    compile.output = outputFile;
    llvm::SmallString<256> model(inputFile);
    llvm::sys::fs::make_absolute(model);
    compile.modelPath = std::string(model);
    compile.seed = spec.training.seed;
    // Methods PEFT has no config for (ReFT, BitFit on named biases, ...)
    // save their tensors without an adapter_config.json.
    std::string configError;
    // The passes may have filled fields from the model (prefix tuning's
    // token_dim, num_layers, ...), as PEFT does before saving.
    FailureOr<peft::spec::PeftSpec> compiled =
        peft::analysis::readSpecAttr(*module, "peftc");
    compile.adapterConfigJson = peft::spec::adapterConfigJson(
        succeeded(compiled) ? *compiled : spec, &resolved, configError);
    compile.printMemoryPlan = printMemoryPlan;
    compile.keepObject = keepObject;
    return failed(peft::driver::compileProgram(*module, compile)) ? 1 : 0;
#else
    llvm::errs() << "peftc: error: this peftc was built without the CPU "
                    "code generator\n";
    return 1;
#endif
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
