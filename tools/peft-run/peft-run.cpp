//===- peft-run.cpp - run a model on the reference evaluator ---------------===//
//
//   peft-run --reference model.mlir|model.onnx --inputs x.safetensors
//            --outputs y.safetensors [--f64] [--input-shape name=DxD]
//
// Inputs are matched to function arguments by name (the ONNX input names);
// outputs are written under the ONNX output names.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Evaluator.h"
#include "frontends/onnx/Importer.h"
#include "peft/SafeTensors.h"
#include "tools/Version.h"
#include "tools/common/Diagnostics.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory cat("peft-run options");
static cl::opt<std::string> model("reference",
                                  cl::desc("Model to run on the reference evaluator "
                                           "(.mlir, .onnx or .onnxtext)"),
                                  cl::value_desc("model"), cl::Required, cl::cat(cat));
static cl::opt<std::string> inputs("inputs", cl::desc("Input tensors (safetensors)"),
                                   cl::value_desc("file"), cl::Required, cl::cat(cat));
static cl::opt<std::string> outputs("outputs", cl::desc("Where to write the outputs"),
                                    cl::value_desc("file"), cl::Required, cl::cat(cat));
static cl::opt<bool> f64("f64", cl::desc("Compute and return every float tensor in f64"),
                         cl::cat(cat));
static cl::list<std::string> inputShapes("input-shape",
                                         cl::desc("Static input shape (ONNX models)"),
                                         cl::value_desc("name=DxD"), cl::cat(cat));

static bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions({&cat});
  cl::ParseCommandLineOptions(argc, argv, "peft-run: the reference evaluator\n");

  MLIRContext context;
  context.printOpOnDiagnostic(false);
  DialectRegistry registry;
  peft::onnx_import::registerImportDialects(registry);
  context.appendDialectRegistry(registry);
  context.loadAllAvailableDialects();
  peft::tools::UserDiagnosticHandler diag(&context, "peft-run");

  peft::SafeTensorsFile in;
  std::string err;
  if (!peft::readSafeTensors(inputs, in, err)) {
    llvm::errs() << "peft-run: error: " << err << "\n";
    return 1;
  }

  OwningOpRef<ModuleOp> module;
  if (endsWith(model, ".mlir")) {
    llvm::SourceMgr sm;
    module = parseSourceFile<ModuleOp>(model, &context);
  } else {
    peft::onnx_import::ImportOptions options;
    for (const std::string &s : inputShapes)
      if (!peft::onnx_import::parseInputShapes(s, options.inputShapes, err)) {
        llvm::errs() << "peft-run: error: " << err << "\n";
        return 1;
      }
    // Unspecified symbolic dims take the shapes of the given tensors.
    for (auto &[name, t] : in.tensors)
      options.inputShapes.emplace(name, t.shape());
    module = peft::onnx_import::importOnnxModel(context, model, options);
  }
  if (!module)
    return 1;

  func::FuncOp func;
  for (auto f : module->getOps<func::FuncOp>()) {
    func = f;
    break;
  }
  if (!func) {
    llvm::errs() << "peft-run: error: " << model << " has no function to run\n";
    return 1;
  }
  std::vector<peft::Tensor> args;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    auto name = func.getArgAttrOfType<StringAttr>(i, "nn.name");
    std::string key = name ? name.str() : "input_" + std::to_string(i);
    const peft::Tensor *t = in.find(key);
    if (!t) {
      llvm::errs() << "peft-run: error: " << inputs << " has no tensor '" << key
                   << "' for input " << i << " of " << model << "\n";
      return 1;
    }
    args.push_back(*t);
  }
  peft::ref::EvalOptions options;
  options.promoteToF64 = f64;
  peft::ref::Evaluator evaluator(*module, options);
  auto results = evaluator.run(args, func.getSymName());
  if (failed(results))
    return 1;
  std::vector<std::pair<std::string, peft::Tensor>> named;
  for (unsigned i = 0; i < results->size(); ++i) {
    auto name = func.getResultAttrOfType<StringAttr>(i, "nn.name");
    named.push_back({name ? name.str() : "output_" + std::to_string(i), (*results)[i]});
  }
  if (!peft::writeSafeTensors(outputs, named, {}, err)) {
    llvm::errs() << "peft-run: error: " << err << "\n";
    return 1;
  }
  return 0;
}
