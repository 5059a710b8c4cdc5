//===- peft-spec.cpp - check a PEFT spec, resolve it against modules ------===//
//
//   peft-spec spec.yaml                     the spec with defaults, as JSON
//   peft-spec spec.yaml --modules list.txt  ... and the modules it selects
//
// A module list has one module per line: `path kind in out [layer=N] [head]
// [bias]` ('#' starts a comment). Errors go to stderr; the exit code is 1.
//
//===----------------------------------------------------------------------===//
#include "frontends/spec/PeftSpec.h"
#include "frontends/spec/TargetResolution.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;
using namespace peft::spec;

static cl::opt<std::string>
    specFile(cl::Positional, cl::Required,
             cl::desc("<spec.yaml | adapter_config.json>"));
static cl::opt<std::string>
    modulesFile("modules", cl::desc("Module list to resolve the targets on"),
                cl::value_desc("file"));
static cl::opt<bool> targetsOnly("targets-only",
                                 cl::desc("Print only the resolved targets"));

static bool readModules(const std::string &path,
                        std::vector<ModuleInfo> &modules, std::string &error) {
  auto buffer = MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer) {
    error = path + ": error: " + buffer.getError().message();
    return false;
  }
  SmallVector<StringRef> lines;
  (*buffer)->getBuffer().split(lines, '\n');
  for (size_t number = 0; number < lines.size(); ++number) {
    StringRef line = lines[number].split('#').first.trim();
    if (line.empty())
      continue;
    SmallVector<StringRef> fields;
    SplitString(line, fields);
    std::string where = path + ":" + std::to_string(number + 1) + ": error: ";
    ModuleInfo module;
    if (fields.size() < 4 || fields[2].getAsInteger(10, module.inFeatures) ||
        fields[3].getAsInteger(10, module.outFeatures)) {
      error = where + "expected 'path kind in out [layer=N] [head] [bias]'";
      return false;
    }
    module.path = fields[0].str();
    module.kind = fields[1].str();
    for (StringRef flag : ArrayRef(fields).drop_front(4)) {
      int layer;
      if (flag == "head")
        module.isOutputHead = true;
      else if (flag == "bias")
        module.hasBias = true;
      else if (flag.consume_front("layer=") && !flag.getAsInteger(10, layer))
        module.layer = layer;
      else {
        error = where + "unknown flag '" + flag.str() + "'";
        return false;
      }
    }
    modules.push_back(std::move(module));
  }
  return true;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "PEFT spec checker\n");

  PeftSpec spec;
  std::string error;
  if (!parseSpecFile(specFile, spec, error)) {
    errs() << error << "\n";
    return 1;
  }
  if (modulesFile.empty()) {
    outs() << toJson(spec);
    return 0;
  }

  std::vector<ModuleInfo> modules;
  if (!readModules(modulesFile, modules, error)) {
    errs() << error << "\n";
    return 1;
  }
  ResolvedTargets resolved;
  if (!resolveTargets(spec, modules, resolved, error)) {
    errs() << error << "\n";
    return 1;
  }
  for (const std::string &warning : resolved.warnings)
    errs() << warning << "\n";
  if (!targetsOnly)
    outs() << toJson(spec);
  outs() << toJson(resolved);
  return 0;
}
