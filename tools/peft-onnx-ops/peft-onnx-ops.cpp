//===- peft-onnx-ops.cpp - the op types an ONNX model uses
//-----------------===//
//
//   peft-onnx-ops model.onnx...                    print the op types, sorted
//   peft-onnx-ops model.onnx... --passed-ops FILE  fail unless each op has a
//                                                  passing ONNX node test
//
// Op types are written as peft-conformance's --passed-ops-out writes them:
// "Op" for the default domain, "domain::Op" otherwise. Nodes inside subgraph
// attributes (If/Loop bodies) and inside model-local functions count; a call
// of a local function counts as the ops of its body.
//
//===----------------------------------------------------------------------===//
#include "frontends/onnx/ModelLoader.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace cl = llvm::cl;

static cl::OptionCategory cat("peft-onnx-ops options");
static cl::list<std::string> models(cl::Positional, cl::OneOrMore,
                                    cl::desc("<model.onnx|model.onnxtext>..."),
                                    cl::cat(cat));
static cl::opt<std::string> passedOps(
    "passed-ops",
    cl::desc("peft-conformance --passed-ops-out file; exit 1 if a model "
             "uses an op with no passing node test"),
    cl::value_desc("file"), cl::init(""), cl::cat(cat));

namespace {

std::string opName(const std::string &domain, const std::string &type) {
  return domain.empty() || domain == "ai.onnx" ? type : domain + "::" + type;
}

class OpCollector {
public:
  explicit OpCollector(const onnx::ModelProto &model) {
    for (const auto &f : model.functions())
      functions_[{f.domain(), f.name()}] = &f;
  }

  void graph(const onnx::GraphProto &g) {
    for (const auto &n : g.node())
      node(n);
  }

  std::set<std::string> ops;

private:
  void node(const onnx::NodeProto &n) {
    auto fn = functions_.find({n.domain(), n.op_type()});
    if (fn != functions_.end()) {
      // Guards against a function that (illegally) calls itself.
      if (expanding_.insert(fn->second).second) {
        for (const auto &inner : fn->second->node())
          node(inner);
        expanding_.erase(fn->second);
      }
    } else {
      ops.insert(opName(n.domain(), n.op_type()));
    }
    for (const auto &a : n.attribute()) {
      if (a.has_g())
        graph(a.g());
      for (const auto &g : a.graphs())
        graph(g);
    }
  }

  std::map<std::pair<std::string, std::string>, const onnx::FunctionProto *>
      functions_;
  std::set<const onnx::FunctionProto *> expanding_;
};

bool readPassedOps(const std::string &path, std::map<std::string, int> &out,
                   std::string &error) {
  std::ifstream in(path);
  if (!in)
    return error = "cannot open '" + path + "'", false;
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (line.empty())
      continue;
    std::istringstream fields(line);
    std::string op;
    int count = 0;
    if (!(fields >> op >> count))
      return error = path + ":" + std::to_string(lineNo) +
                     ": expected 'op passing-test-count'",
             false;
    out[op] = count;
  }
  return true;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions({&cat});
  cl::ParseCommandLineOptions(
      argc, argv, "peft-onnx-ops: the op types an ONNX model uses\n");

  std::map<std::string, int> passed;
  std::string err;
  if (!passedOps.empty() && !readPassedOps(passedOps, passed, err)) {
    llvm::errs() << "peft-onnx-ops: error: " << err << "\n";
    return 1;
  }

  int uncovered = 0;
  for (const std::string &path : models) {
    peft::onnx_import::LoadedModel model;
    if (!peft::onnx_import::loadModel(path, model, err)) {
      llvm::errs() << "peft-onnx-ops: error: " << err << "\n";
      return 1;
    }
    OpCollector collector(model.proto);
    collector.graph(model.proto.graph());
    if (passedOps.empty()) {
      if (models.size() > 1)
        llvm::outs() << path << ":\n";
      for (const std::string &op : collector.ops)
        llvm::outs() << op << "\n";
      continue;
    }
    std::vector<std::string> missing;
    for (const std::string &op : collector.ops)
      if (passed[op] <= 0)
        missing.push_back(op);
    llvm::outs() << path << ": " << collector.ops.size() << " ops, ";
    if (missing.empty()) {
      llvm::outs() << "each has a passing ONNX node test\n";
      continue;
    }
    uncovered += (int)missing.size();
    llvm::outs() << missing.size() << " without a passing ONNX node test:";
    for (const std::string &op : missing)
      llvm::outs() << " " << op;
    llvm::outs() << "\n";
  }
  return uncovered ? 1 : 0;
}
