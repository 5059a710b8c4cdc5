//===- KernelCompiler.cpp - loop kernels -> LLVM IR -> native code --------===//
#include "codegen/cpu/KernelCompiler.h"

#include "codegen/cpu/LoopEmitter.h"

#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVM.h"
#include "mlir/Conversion/LLVMCommon/ConversionTarget.h"
#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MathToLibm/MathToLibm.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/DialectConversion.h"

#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"

#include <mutex>

using namespace mlir;

namespace peft::codegen {

std::string kernelSymbol(StringRef name) {
  return ("peftc_kernel_" + name).str();
}

std::vector<std::string> loopKernelNames(ModuleOp loopModule) {
  std::vector<std::string> names;
  for (auto f : loopModule.getOps<func::FuncOp>())
    if (f->hasAttr(kLoopsAttr))
      names.push_back(f.getSymName().str());
  return names;
}

FailureOr<OwningOpRef<ModuleOp>>
extractLoopKernels(ModuleOp module, const LoopEmitOptions &options) {
  OwningOpRef<ModuleOp> loops = ModuleOp::create(module.getLoc());
  OpBuilder b(module.getContext());
  b.setInsertionPointToEnd(loops->getBody());
  SmallVector<func::FuncOp> kernels;
  for (auto f : module.getOps<func::FuncOp>())
    if (f->hasAttr(kKernelAttr)) {
      kernels.push_back(f);
      b.clone(*f);
    }
  if (failed(emitLoopKernels(*loops, options)))
    return failure();
  for (func::FuncOp f : kernels) {
    auto lf = loops->lookupSymbol<func::FuncOp>(f.getSymName());
    f->setAttr(kExtentAttr, lf->getAttr(kExtentAttr));
  }
  return loops;
}

LogicalResult lowerToLLVMDialect(ModuleOp m) {
  MLIRContext *ctx = m.getContext();
  ctx->loadDialect<arith::ArithDialect, cf::ControlFlowDialect,
                   func::FuncDialect, LLVM::LLVMDialect, math::MathDialect,
                   memref::MemRefDialect, scf::SCFDialect>();
  std::vector<std::string> names = loopKernelNames(m);

  PassManager pm(ctx);
  pm.addPass(createConvertSCFToCFPass());
  if (failed(pm.run(m)))
    return failure();

  // Math functions without an exact LLVM intrinsic (LLVM's lowering of
  // expm1/log1p is exp(x)-1 / log(1+x)) become libm calls (tanhf, erff, ...);
  // the rest (exp, log, sqrt, sin, floor, ...) become intrinsics below.
  {
    ConversionTarget target(*ctx);
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    target.addIllegalOp<math::TanOp, math::TanhOp, math::ErfOp, math::AsinOp,
                        math::AcosOp, math::AtanOp, math::SinhOp, math::CoshOp,
                        math::AsinhOp, math::AcoshOp, math::AtanhOp,
                        math::ExpM1Op, math::Log1pOp>();
    RewritePatternSet patterns(ctx);
    populateMathToLibmConversionPatterns(patterns);
    if (failed(applyPartialConversion(m, target, std::move(patterns))))
      return failure();
  }

  {
    LowerToLLVMOptions options(ctx);
    options.useBarePtrCallConv = true;
    LLVMTypeConverter converter(ctx, options);
    RewritePatternSet patterns(ctx);
    arith::populateArithToLLVMConversionPatterns(converter, patterns);
    populateMathToLLVMConversionPatterns(converter, patterns,
                                         /*approximateLog1p=*/false);
    cf::populateControlFlowToLLVMConversionPatterns(converter, patterns);
    populateFinalizeMemRefToLLVMConversionPatterns(converter, patterns);
    populateFuncToLLVMConversionPatterns(converter, patterns);
    LLVMConversionTarget target(*ctx);
    target.addLegalOp<ModuleOp>();
    if (failed(applyFullConversion(m, target, std::move(patterns))))
      return failure();
  }
  PassManager reconcile(ctx);
  reconcile.addPass(createReconcileUnrealizedCastsPass());
  if (failed(reconcile.run(m)))
    return failure();

  // ABI wrappers: void sym(void *const *args, int64_t begin, int64_t end)
  // loads each buffer pointer and calls the (internal, inlined) loop kernel.
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(m.getBody());
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto i64 = b.getI64Type();
  auto wrapperType = LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx),
                                                 {ptr, i64, i64});
  for (const std::string &name : names) {
    auto fn = m.lookupSymbol<LLVM::LLVMFuncOp>(name);
    if (!fn)
      return m.emitError("lowering: loop kernel '") << name << "' vanished";
    fn.setLinkage(LLVM::Linkage::Internal);
    Location loc = fn.getLoc();
    auto wrapper =
        b.create<LLVM::LLVMFuncOp>(loc, kernelSymbol(name), wrapperType);
    Block *entry = wrapper.addEntryBlock(b);
    OpBuilder wb = OpBuilder::atBlockBegin(entry);
    unsigned numBuffers = fn.getNumArguments() - 2;
    SmallVector<Value> args;
    for (unsigned i = 0; i < numBuffers; ++i) {
      Value slot = wb.create<LLVM::GEPOp>(loc, ptr, ptr, entry->getArgument(0),
                                          ArrayRef<LLVM::GEPArg>{(int32_t)i});
      args.push_back(wb.create<LLVM::LoadOp>(loc, ptr, slot));
    }
    args.push_back(entry->getArgument(1));
    args.push_back(entry->getArgument(2));
    wb.create<LLVM::CallOp>(loc, fn, args);
    wb.create<LLVM::ReturnOp>(loc, ValueRange{});
  }
  return success();
}

namespace {

void initializeNativeTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

/// The host's name and features (llvm::sys::getHostCPUName/Features).
llvm::Expected<llvm::orc::JITTargetMachineBuilder> hostMachine() {
  initializeNativeTarget();
  auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb)
    return jtmb.takeError();
  jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  return jtmb;
}

llvm::Error optimize(llvm::Module &module, llvm::TargetMachine &tm) {
  module.setDataLayout(tm.createDataLayout());
  module.setTargetTriple(tm.getTargetTriple().str());
  // Function attributes let inlining and vectorisation use the host's
  // features (AVX-512 and so on), as clang's -march=native does.
  for (llvm::Function &f : module) {
    if (f.isDeclaration())
      continue;
    f.addFnAttr("target-cpu", tm.getTargetCPU());
    f.addFnAttr("target-features", tm.getTargetFeatureString());
  }
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  llvm::PassBuilder pb(&tm, tuning);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm =
      pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  mpm.run(module, mam);
  return llvm::Error::success();
}

llvm::Error mlirError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

} // namespace

static llvm::Expected<std::unique_ptr<llvm::Module>>
translateToLLVMIR(ModuleOp m, llvm::LLVMContext &context) {
  registerBuiltinDialectTranslation(*m.getContext());
  registerLLVMDialectTranslation(*m.getContext());
  std::unique_ptr<llvm::Module> module =
      translateModuleToLLVMIR(m, context, "peftc_kernels");
  if (!module)
    return mlirError("kernel compilation: translation to LLVM IR failed");
  return module;
}

llvm::Expected<std::unique_ptr<llvm::Module>>
translateAndOptimize(ModuleOp m, llvm::LLVMContext &context) {
  auto module = translateToLLVMIR(m, context);
  if (!module)
    return module.takeError();
  auto jtmb = hostMachine();
  if (!jtmb)
    return jtmb.takeError();
  auto tm = jtmb->createTargetMachine();
  if (!tm)
    return tm.takeError();
  if (llvm::Error e = optimize(**module, **tm))
    return std::move(e);
  return module;
}

llvm::Error emitObjectFile(ModuleOp loopModule, ArrayRef<uint8_t> program,
                           ArrayRef<std::string> kernelNames,
                           llvm::raw_pwrite_stream &out) {
  std::vector<std::string> available = loopKernelNames(loopModule);
  for (const std::string &name : kernelNames)
    if (!llvm::is_contained(available, name))
      return mlirError("object emission: no loop kernel named '" + name + "'");
  if (failed(lowerToLLVMDialect(loopModule)))
    return mlirError("object emission: lowering to the LLVM dialect failed");

  llvm::LLVMContext context;
  auto module = translateToLLVMIR(loopModule, context);
  if (!module)
    return module.takeError();
  llvm::Module &mod = **module;

  // The program globals of KernelABI.h, external and constant.
  auto *i64 = llvm::Type::getInt64Ty(context);
  auto *ptr = llvm::PointerType::get(context, 0);
  auto global = [&](llvm::Constant *init, StringRef name) {
    return new llvm::GlobalVariable(mod, init->getType(), /*isConstant=*/true,
                                    llvm::GlobalValue::ExternalLinkage, init,
                                    name);
  };
  global(llvm::ConstantDataArray::get(context, program),
         PEFTC_PROGRAM_DATA_SYMBOL);
  global(llvm::ConstantInt::get(i64, program.size()),
         PEFTC_PROGRAM_SIZE_SYMBOL);
  auto *entryType = llvm::StructType::get(context, {ptr, ptr});
  std::vector<llvm::Constant *> entries;
  for (const std::string &name : kernelNames) {
    auto *str = llvm::ConstantDataArray::getString(context, name);
    auto *strGlobal = new llvm::GlobalVariable(
        mod, str->getType(), true, llvm::GlobalValue::PrivateLinkage, str,
        ".peftc_name");
    strGlobal->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
    llvm::Function *fn = mod.getFunction(kernelSymbol(name));
    if (!fn)
      return mlirError("object emission: no ABI wrapper for kernel '" + name +
                       "'");
    entries.push_back(llvm::ConstantStruct::get(entryType, {strGlobal, fn}));
  }
  global(llvm::ConstantArray::get(
             llvm::ArrayType::get(entryType, entries.size()), entries),
         PEFTC_KERNEL_TABLE_SYMBOL);
  global(llvm::ConstantInt::get(i64, kernelNames.size()),
         PEFTC_KERNEL_COUNT_SYMBOL);

  auto jtmb = hostMachine();
  if (!jtmb)
    return jtmb.takeError();
  // Linked into position-independent executables and shared objects.
  jtmb->setRelocationModel(llvm::Reloc::PIC_);
  auto tm = jtmb->createTargetMachine();
  if (!tm)
    return tm.takeError();
  if (llvm::Error e = optimize(mod, **tm))
    return e;
  llvm::legacy::PassManager codegen;
  if ((*tm)->addPassesToEmitFile(codegen, out, nullptr,
                                 llvm::CodeGenFileType::ObjectFile))
    return mlirError("object emission: the target cannot emit object files");
  codegen.run(mod);
  return llvm::Error::success();
}

KernelJIT::~KernelJIT() = default;

llvm::Expected<std::unique_ptr<KernelJIT>> KernelJIT::create(ModuleOp m) {
  std::unique_ptr<KernelJIT> self(new KernelJIT());
  self->names_ = loopKernelNames(m);
  if (failed(lowerToLLVMDialect(m)))
    return mlirError("JIT: lowering to the LLVM dialect failed");
  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = translateAndOptimize(m, *context);
  if (!module)
    return module.takeError();
  auto jtmb = hostMachine();
  if (!jtmb)
    return jtmb.takeError();
  auto jit = llvm::orc::LLJITBuilder()
                 .setJITTargetMachineBuilder(std::move(*jtmb))
                 .create();
  if (!jit)
    return jit.takeError();
  self->jit_ = std::move(*jit);
  // libm (expf, tanhf, ...) resolves against this process.
  auto generator =
      llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
          self->jit_->getDataLayout().getGlobalPrefix());
  if (!generator)
    return generator.takeError();
  self->jit_->getMainJITDylib().addGenerator(std::move(*generator));
  if (llvm::Error e = self->jit_->addIRModule(
          llvm::orc::ThreadSafeModule(std::move(*module), std::move(context))))
    return std::move(e);
  for (const std::string &name : self->names_) {
    auto addr = self->jit_->lookup(kernelSymbol(name));
    if (!addr)
      return addr.takeError();
    self->entries_.push_back({nullptr, addr->toPtr<peft_kernel_fn>()});
  }
  // Names point into names_, which no longer changes.
  for (size_t i = 0; i < self->names_.size(); ++i)
    self->entries_[i].name = self->names_[i].c_str();
  return self;
}

peft_kernel_fn KernelJIT::lookup(StringRef name) const {
  for (const peft_kernel_entry &e : entries_)
    if (name == e.name)
      return e.fn;
  return nullptr;
}

} // namespace peft::codegen
