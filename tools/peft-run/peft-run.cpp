//===- peft-run.cpp - run a model on the reference evaluator --------------===//
//
//   peft-run --reference model.mlir|model.onnx --inputs x.safetensors
//            [--outputs y.safetensors] [--expect golden.safetensors
//            [--rtol R] [--atol A]] [--f64] [--input-shape name=DxD]
//
// Inputs are matched to function arguments by name (the ONNX input names);
// outputs are written under the ONNX output names. --expect compares them,
// by name, with golden tensors (floats: |got - want| <= atol + rtol*|want|;
// integers and bool exactly) and exits 1 naming the first mismatch.
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

#include <cmath>
#include <cstdio>

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory cat("peft-run options");
static cl::opt<std::string>
    model("reference",
          cl::desc("Model to run on the reference evaluator "
                   "(.mlir, .onnx or .onnxtext)"),
          cl::value_desc("model"), cl::Required, cl::cat(cat));
static cl::opt<std::string> inputs("inputs",
                                   cl::desc("Input tensors (safetensors)"),
                                   cl::value_desc("file"), cl::Required,
                                   cl::cat(cat));
static cl::opt<std::string> outputs("outputs",
                                    cl::desc("Where to write the outputs"),
                                    cl::value_desc("file"), cl::cat(cat));
static cl::opt<std::string>
    expect("expect",
           cl::desc("Compare the outputs with these tensors (by name); exit 1 "
                    "on a mismatch"),
           cl::value_desc("file"), cl::cat(cat));
static cl::opt<double> relTol("rtol",
                              cl::desc("Relative tolerance of --expect"),
                              cl::init(1e-4), cl::cat(cat));
static cl::opt<double> absTol("atol",
                              cl::desc("Absolute tolerance of --expect"),
                              cl::init(1e-5), cl::cat(cat));
static cl::opt<bool>
    f64("f64", cl::desc("Compute and return every float tensor in f64"),
        cl::cat(cat));
static cl::list<std::string>
    inputShapes("input-shape", cl::desc("Static input shape (ONNX models)"),
                cl::value_desc("name=DxD"), cl::cat(cat));

static std::string indexString(const peft::Shape &shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  std::string s = "[";
  for (size_t d = 0; d < index.size(); ++d)
    s += (d ? ", " : "") + std::to_string(index[d]);
  return s + "]";
}

static std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

/// Compares `got` with `want`; on a mismatch returns false with the reason.
static bool matches(const peft::Tensor &got, const peft::Tensor &want,
                    std::string &why) {
  using peft::isFloat;
  if (got.shape() != want.shape()) {
    why = "has shape " + peft::shapeToString(got.shape()) + ", expected " +
          peft::shapeToString(want.shape());
    return false;
  }
  bool floats = isFloat(want.dtype());
  if (floats != isFloat(got.dtype())) {
    why = "is " + std::string(peft::dtypeName(got.dtype())) + ", expected " +
          std::string(peft::dtypeName(want.dtype()));
    return false;
  }
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < want.numel(); ++i) {
    bool ok;
    if (floats) {
      double a = got.getDouble(i), b = want.getDouble(i);
      ok = (std::isnan(a) && std::isnan(b)) || a == b ||
           std::fabs(a - b) <= absTol + relTol * std::fabs(b);
    } else {
      ok = got.getInt(i) == want.getInt(i);
    }
    if (!ok && bad++ == 0)
      first = i;
  }
  if (bad == 0)
    return true;
  std::string got0, want0;
  if (floats) {
    got0 = number(got.getDouble(first));
    want0 = number(want.getDouble(first));
  } else {
    got0 = std::to_string(got.getInt(first));
    want0 = std::to_string(want.getInt(first));
  }
  why = std::to_string(bad) + " of " + std::to_string(want.numel()) +
        " elements differ" +
        (floats ? " (rtol " + number(relTol) + ", atol " + number(absTol) + ")"
                : std::string(" (compared exactly)")) +
        "; first at " + indexString(want.shape(), first) + ": got " + got0 +
        ", expected " + want0;
  return false;
}

static bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions({&cat});
  cl::ParseCommandLineOptions(argc, argv,
                              "peft-run: the reference evaluator\n");
  if (outputs.empty() && expect.empty()) {
    llvm::errs() << "peft-run: error: nothing to do: give --outputs FILE, "
                    "--expect FILE or both\n";
    return 1;
  }

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
      options.dataShapes.emplace(name, t.shape());
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
    named.push_back(
        {name ? name.str() : "output_" + std::to_string(i), (*results)[i]});
  }
  if (!outputs.empty() && !peft::writeSafeTensors(outputs, named, {}, err)) {
    llvm::errs() << "peft-run: error: " << err << "\n";
    return 1;
  }
  if (expect.empty())
    return 0;
  peft::SafeTensorsFile golden;
  if (!peft::readSafeTensors(expect, golden, err)) {
    llvm::errs() << "peft-run: error: " << err << "\n";
    return 1;
  }
  int failures = 0;
  for (auto &[name, want] : golden.tensors) {
    const peft::Tensor *got = nullptr;
    for (auto &[outName, t] : named)
      if (outName == name)
        got = &t;
    std::string why;
    if (!got)
      why = "is not an output of " + model;
    else if (matches(*got, want, why))
      continue;
    llvm::errs() << "peft-run: error: output '" << name << "' " << why
                 << " (golden: " << expect << ")\n";
    ++failures;
  }
  if (failures)
    return 1;
  llvm::outs() << "peft-run: " << golden.tensors.size() << " output"
               << (golden.tensors.size() == 1 ? "" : "s") << " match " << expect
               << "\n";
  return 0;
}
