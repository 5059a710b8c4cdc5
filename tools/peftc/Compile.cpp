//===- Compile.cpp - training IR -> native trainer / program object -------===//

#include "Compile.h"

#include "PeftcLinkConfig.h"
#include "codegen/cpu/KernelCompiler.h"
#include "codegen/program/ProgramEmitter.h"
#include "passes/Passes.h"

#include "peft/Program.h"

#include "mlir/Pass/PassManager.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"
#include <cstdlib>
#include <unistd.h>

using namespace mlir;

namespace peft::driver {

static LogicalResult error(const llvm::Twine &message) {
  llvm::errs() << "peftc: error: " << message << "\n";
  return failure();
}

/// A static library of the runtime: beside an installed peftc
/// (<prefix>/bin/../lib) first, else where this build put it.
static std::string runtimeLibrary(llvm::StringRef fileName,
                                  llvm::StringRef buildPath) {
  std::string exe = llvm::sys::fs::getMainExecutable(
      nullptr, reinterpret_cast<void *>(&runtimeLibrary));
  llvm::SmallString<256> installed(
      llvm::sys::path::parent_path(llvm::sys::path::parent_path(exe)));
  llvm::sys::path::append(installed, PEFTC_INSTALL_LIBDIR, fileName);
  if (llvm::sys::fs::exists(installed))
    return std::string(installed);
  return buildPath.str();
}

/// Links `object` into `options.output` with the system C++ driver ($CXX,
/// else c++).
static LogicalResult link(llvm::StringRef object,
                          const CompileOptions &options) {
  const char *fromEnv = std::getenv("CXX");
  std::string driverName = fromEnv && *fromEnv ? fromEnv : "c++";
  llvm::ErrorOr<std::string> driver = llvm::sys::findProgramByName(driverName);
  // Without $CXX, any C++ driver will do: c++ is an alternative that not
  // every installation registers.
  if (!driver && !(fromEnv && *fromEnv))
    for (const char *fallback : {"clang++", "g++"})
      if ((driver = llvm::sys::findProgramByName(fallback)))
        break;
  if (!driver)
    return error("cannot link " + options.output +
                 ": no C++ compiler driver '" + driverName +
                 "' on PATH (set CXX)");
  std::vector<std::string> args{*driver};
  if (options.kind == OutputKind::Shared) {
    args.insert(args.end(), {"-shared", object.str()});
  } else {
    std::string main =
        runtimeLibrary(PEFTC_TRAINER_MAIN_NAME, PEFTC_TRAINER_MAIN_PATH);
    std::string runtime =
        runtimeLibrary(PEFTC_RUNTIME_STATIC_NAME, PEFTC_RUNTIME_STATIC_PATH);
    for (const std::string &lib : {main, runtime})
      if (!llvm::sys::fs::exists(lib))
        return error("cannot link " + options.output +
                     ": the runtime library " + lib +
                     " is missing (build or install peftrt)");
    args.insert(args.end(),
                {object.str(), main, runtime, PEFTC_DNNL_LIB,
                 "-Wl,-rpath," PEFTC_DNNL_DIR, "-lgomp", "-ldl", "-lpthread"});
  }
  args.insert(args.end(), {"-lm", "-o", options.output});
  std::vector<llvm::StringRef> argRefs(args.begin(), args.end());
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(*driver, argRefs, std::nullopt, {}, 0, 0,
                                     &message);
  if (rc != 0) {
    std::string command;
    for (const std::string &a : args)
      command += (command.empty() ? "" : " ") + a;
    return error("linking " + options.output + " failed (" +
                 (message.empty() ? "exit " + std::to_string(rc) : message) +
                 "): " + command);
  }
  return success();
}

FailureOr<LoweredProgram> lowerProgram(ModuleOp module,
                                       const CompileOptions &options) {
  MLIRContext *context = module.getContext();
  codegen::recordIndexLimits(module);
  {
    PassManager pm(context);
    pm.addPass(createDecompose());
    pm.addPass(createLowerGemms());
    pm.addPass(createOutlineKernels());
    if (failed(pm.run(module)))
      return failure();
  }
  FailureOr<OwningOpRef<ModuleOp>> loops = codegen::extractLoopKernels(module);
  if (failed(loops))
    return failure();
  {
    PassManager pm(context);
    PlanMemoryOptions plan;
    plan.print = options.printMemoryPlan;
    pm.addPass(createPlanMemory(plan));
    if (failed(pm.run(module)))
      return failure();
  }
  codegen::ProgramOptions programOptions;
  programOptions.seed = options.seed;
  programOptions.producer = "peftc";
  programOptions.weightsPath = options.modelPath;
  programOptions.adapterConfigJson = options.adapterConfigJson;
  FailureOr<program::Program> program =
      codegen::emitProgram(module, programOptions);
  if (failed(program))
    return failure();
  return LoweredProgram{std::move(*program), std::move(*loops)};
}

LogicalResult compileProgram(ModuleOp module, const CompileOptions &options) {
  FailureOr<LoweredProgram> lowered = lowerProgram(module, options);
  if (failed(lowered))
    return failure();
  std::string bytes = program::encodeProgram(lowered->program);
  std::vector<std::string> kernelNames;
  for (const program::Kernel &kernel : lowered->program.kernels)
    kernelNames.push_back(kernel.symbol);

  // The object goes next to the output when it is the output or is kept,
  // else to a temporary file removed after linking.
  llvm::SmallString<256> objectPath;
  if (options.kind == OutputKind::Object) {
    objectPath = options.output;
  } else if (options.keepObject) {
    objectPath = options.output + ".o";
  } else {
    int fd;
    if (std::error_code ec = llvm::sys::fs::createTemporaryFile(
            "peftc-program", "o", fd, objectPath))
      return error("cannot create a temporary object file: " + ec.message());
    ::close(fd);
  }
  auto removeTemp = llvm::make_scope_exit([&] {
    if (options.kind != OutputKind::Object && !options.keepObject)
      llvm::sys::fs::remove(objectPath);
  });
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(objectPath, ec);
    if (ec)
      return error("cannot write " + objectPath + ": " + ec.message());
    if (llvm::Error err = codegen::emitObjectFile(
            *lowered->loops,
            llvm::ArrayRef<uint8_t>(
                reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size()),
            kernelNames, os))
      return error("code generation failed: " + llvm::toString(std::move(err)));
    os.close();
    if (os.has_error())
      return error("cannot write " + objectPath + ": " + os.error().message());
  }
  if (options.kind == OutputKind::Object)
    return success();
  return link(objectPath, options);
}

} // namespace peft::driver
