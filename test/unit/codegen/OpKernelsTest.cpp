//===- OpKernelsTest.cpp - shape, conv and peft loop kernels vs reference -===//
//
// Every op with a loop or scalar emitter in ShapeEmitters.cpp,
// ConvEmitters.cpp and PeftEmitters.cpp, JIT-compiled and run on real
// inputs:
//  - the ONNX backend node tests of those ops: each test's function runs op
//    by op, the ops under test through their compiled kernels (split into
//    three calls over the parallel range, as threads would run them), every
//    other op on the reference evaluator. Each kernel's result must equal
//    the reference kernel's on the same operands bit for bit (floats too:
//    the kernels accumulate in f64 in the reference's order), and the
//    function's outputs must match the test's expected outputs (the
//    conformance tool's tolerances). All kernels of all node tests compile
//    in ONE JIT.
//  - hand-written modules for what the node tests do not reach: the
//    gradient ops, the optimizer updates, clipping and schedules, every pad
//    mode, scatter reductions, integer variants, odd windows.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/KernelCompiler.h"
#include "codegen/cpu/LoopEmitter.h"
#include "codegen/reference/Evaluator.h"
#include "codegen/reference/TensorAttr.h"
#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"
#include "frontends/onnx/Importer.h"
#include "frontends/onnx/ModelLoader.h"
#include "frontends/onnx/TensorProto.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <dirent.h>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

using namespace mlir;
using namespace peft;

namespace {

void loadDialects(MLIRContext &context) {
  DialectRegistry registry;
  onnx_import::registerImportDialects(registry);
  context.appendDialectRegistry(registry);
  context.loadDialect<func::FuncDialect, nn::NNDialect, pir::PeftDialect,
                      arith::ArithDialect, scf::SCFDialect,
                      memref::MemRefDialect, math::MathDialect>();
}

/// Copies of single ops outlined into kernel functions k0, k1, ... of one
/// module, compiled together and run on host tensors.
class OpKernels {
public:
  explicit OpKernels(MLIRContext &context)
      : context_(context),
        module_(ModuleOp::create(UnknownLoc::get(&context))) {}

  /// Outlines a copy of `op` (its operands become the kernel's arguments).
  /// Returns the kernel's id, or -1 with `error` set when the op has no
  /// loop emission (which the caller reports).
  int add(Operation *op, std::string &error) {
    OpBuilder b(&context_);
    b.setInsertionPointToEnd(module_->getBody());
    std::string name = "k" + std::to_string(count_);
    auto fn = b.create<func::FuncOp>(
        op->getLoc(), name,
        b.getFunctionType(op->getOperandTypes(), op->getResultTypes()));
    fn.setPrivate();
    fn->setAttr(codegen::kKernelAttr, b.getUnitAttr());
    Block *entry = fn.addEntryBlock();
    b.setInsertionPointToStart(entry);
    IRMapping map;
    map.map(op->getOperands(), entry->getArguments());
    Operation *copy = b.clone(*op, map);
    b.create<func::ReturnOp>(op->getLoc(), copy->getResults());
    // Emit it alone first, so one op that cannot be emitted is reported
    // and left out instead of failing the whole batch.
    OwningOpRef<ModuleOp> scratch = ModuleOp::create(op->getLoc());
    OpBuilder sb(&context_);
    sb.setInsertionPointToEnd(scratch->getBody());
    auto trial = cast<func::FuncOp>(sb.clone(*fn));
    std::string diag;
    {
      ScopedDiagnosticHandler handler(&context_, [&](Diagnostic &d) {
        if (diag.empty())
          diag = d.str();
        return success();
      });
      if (failed(codegen::emitLoopKernel(trial, name + "_trial"))) {
        error = "loop emission failed: " + diag;
        fn.erase();
        return -1;
      }
    }
    return count_++;
  }

  /// Compiles every kernel added so far with one JIT.
  bool compile(std::string &error) {
    std::string diag;
    ScopedDiagnosticHandler handler(&context_, [&](Diagnostic &d) {
      if (diag.empty())
        diag = d.str();
      return success();
    });
    auto loops = codegen::extractLoopKernels(*module_);
    if (failed(loops))
      return error = "extractLoopKernels: " + diag, false;
    loops_ = std::move(*loops);
    auto jit = codegen::KernelJIT::create(*loops_);
    if (!jit)
      return error = "JIT: " + llvm::toString(jit.takeError()) + " " + diag,
             false;
    jit_ = std::move(*jit);
    for (auto fn : module_->getOps<func::FuncOp>())
      extents_.push_back(
          cast<IntegerAttr>(fn->getAttr(codegen::kExtentAttr)).getInt());
    return true;
  }

  /// Runs kernel `id` on `operands`, calling it on three consecutive parts
  /// of its parallel range.
  std::vector<Tensor> run(int id, ArrayRef<Tensor> operands) {
    auto fn = cast<func::FuncOp>(
        module_->getBody()->getOperations().begin().operator->());
    int i = 0;
    for (auto f : module_->getOps<func::FuncOp>())
      if (i++ == id)
        fn = f;
    std::vector<Tensor> args, results;
    std::vector<void *> pointers;
    for (auto [t, type] : llvm::zip(operands, fn.getArgumentTypes())) {
      DType want = *toDType(cast<RankedTensorType>(type).getElementType());
      args.push_back(t.dtype() == want ? t : t.castTo(want));
      pointers.push_back(pointerOf(args.back()));
    }
    for (Type type : fn.getResultTypes()) {
      auto tt = cast<RankedTensorType>(type);
      results.emplace_back(*toDType(tt.getElementType()), toShape(tt));
      pointers.push_back(pointerOf(results.back()));
    }
    peft_kernel_fn kernel = jit_->lookup(fn.getSymName());
    EXPECT_NE(kernel, nullptr) << fn.getSymName().str();
    if (!kernel)
      return results;
    int64_t extent = extents_[id];
    int64_t cut1 = extent / 3, cut2 = 2 * extent / 3;
    kernel(pointers.data(), 0, cut1);
    kernel(pointers.data(), cut1, cut2);
    kernel(pointers.data(), cut2, extent);
    return results;
  }

  int size() const { return count_; }

private:
  /// Buffers of empty tensors are never read, but must not be null.
  static void *pointerOf(Tensor &t) {
    static uint64_t empty[2] = {0, 0};
    if (t.numel() == 0)
      return empty;
    return t.mutableBytes();
  }

  MLIRContext &context_;
  OwningOpRef<ModuleOp> module_, loops_;
  std::unique_ptr<codegen::KernelJIT> jit_;
  std::vector<int64_t> extents_;
  int count_ = 0;
};

/// Integers and bool exactly; floats within `rtol` relative (plus `atol`),
/// NaNs where NaNs are expected, infinities exactly.
bool sameValues(const Tensor &got, const Tensor &want, double rtol, double atol,
                std::string &why) {
  if (got.shape() != want.shape()) {
    why = "shape " + shapeToString(got.shape()) + " vs " +
          shapeToString(want.shape());
    return false;
  }
  bool fl = isFloat(want.dtype());
  for (int64_t i = 0; i < want.numel(); ++i) {
    if (fl) {
      double a = got.getDouble(i), b = want.getDouble(i);
      if (std::isnan(b) ? std::isnan(a)
                        : (std::isinf(b) ? a == b
                                         : std::fabs(a - b) <=
                                               atol + rtol * std::fabs(b)))
        continue;
      std::ostringstream os;
      os.precision(10);
      os << "element " << i << ": " << a << " vs " << b;
      why = os.str();
      return false;
    }
    if (got.getInt(i) != want.getInt(i)) {
      why = "element " + std::to_string(i) + ": " +
            std::to_string(got.getInt(i)) + " vs " +
            std::to_string(want.getInt(i));
      return false;
    }
  }
  return true;
}

/// The ops whose emitters this test covers.
const std::set<std::string> &coveredOps() {
  static const std::set<std::string> ops = {"nn.reshape",
                                            "nn.transpose",
                                            "nn.slice",
                                            "nn.concat",
                                            "nn.gather",
                                            "nn.gather_elements",
                                            "nn.gather_nd",
                                            "nn.broadcast_to",
                                            "nn.pad",
                                            "nn.trilu",
                                            "nn.cumsum",
                                            "nn.scatter_elements",
                                            "nn.scatter_nd",
                                            "nn.one_hot",
                                            "nn.einsum",
                                            "nn.conv",
                                            "nn.conv_transpose",
                                            "nn.max_pool",
                                            "nn.avg_pool",
                                            "nn.conv_weight_grad",
                                            "nn.max_pool_grad",
                                            "nn.avg_pool_grad",
                                            "peft.adamw",
                                            "peft.sgd",
                                            "peft.clip_grad_norm",
                                            "peft.lr_schedule",
                                            "peft.reft_positions",
                                            "peft.intervention_mask",
                                            "peft.householder_sweep",
                                            "peft.dropout"};
  return ops;
}

//===----------------------------------------------------------------------===//
// ONNX backend node tests
//===----------------------------------------------------------------------===//

const char *kNodeTestDir = "/usr/share/libonnx-testdata/data/node";

/// Node tests of the covered ops, by name prefix.
bool isCoveredNodeTest(const std::string &name) {
  static const char *prefixes[] = {
      "test_reshape",       "test_flatten",      "test_squeeze",
      "test_unsqueeze",     "test_transpose",    "test_slice",
      "test_concat",        "test_gather",       "test_expand",
      "test_constant_pad",  "test_edge_pad",     "test_reflect_pad",
      "test_wrap_pad",      "test_tril",         "test_triu",
      "test_cumsum",        "test_scatter",      "test_onehot",
      "test_einsum",        "test_conv",         "test_basic_conv",
      "test_maxpool",       "test_averagepool",  "test_globalaveragepool",
      "test_globalmaxpool", "test_depthtospace", "test_spacetodepth"};
  for (const char *p : prefixes)
    if (name.rfind(p, 0) == 0)
      return true;
  return false;
}

std::vector<std::string> listDir(const std::string &dir) {
  std::vector<std::string> out;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d))
      if (e->d_name[0] != '.')
        out.push_back(e->d_name);
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool readTensorPb(const std::string &path, const onnx_import::LoadedModel &m,
                  Tensor &t, std::string &err) {
  std::ifstream in(path, std::ios::binary);
  onnx::TensorProto proto;
  if (!in || !proto.ParseFromIstream(&in))
    return err = "cannot read " + path, false;
  return onnx_import::decodeTensor(proto, m, t, err);
}

struct NodeTest {
  std::string name;
  OwningOpRef<ModuleOp> module;
  std::vector<Tensor> args, expected;
  /// Kernel id of every covered op of the function.
  std::map<Operation *, int> kernels;
};

/// Imports test `name` as the conformance tool does (integer inputs bound
/// as constants when a shape must be known at compile time). Returns false
/// for tests the importer does not support (`why`: its first diagnostic).
bool importNodeTest(MLIRContext &context, const std::string &name,
                    NodeTest &test, std::string &why) {
  std::string dir = std::string(kNodeTestDir) + "/" + name;
  onnx_import::LoadedModel model;
  std::string err;
  if (!onnx_import::loadModel(dir + "/model.onnx", model, err))
    return false;
  const auto &graph = model.proto.graph();
  std::vector<std::pair<std::string, Tensor>> inputs;
  for (int i = 0; i < graph.input_size(); ++i) {
    Tensor t;
    if (!readTensorPb(dir + "/test_data_set_0/input_" + std::to_string(i) +
                          ".pb",
                      model, t, err))
      return false;
    inputs.push_back({graph.input(i).name(), t});
  }
  for (int i = 0; i < graph.output_size(); ++i) {
    Tensor t;
    if (!readTensorPb(dir + "/test_data_set_0/output_" + std::to_string(i) +
                          ".pb",
                      model, t, err))
      return false;
    test.expected.push_back(t);
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string diag;
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
      if (diag.empty())
        diag = d.str();
      return success();
    });
    onnx_import::ImportOptions options;
    for (auto &[n, t] : inputs) {
      if (attempt == 1 && !isFloat(t.dtype()))
        options.constantInputs[n] = t;
      else
        options.inputShapes[n] = t.shape();
    }
    test.module =
        onnx_import::importOnnxModel(context, dir + "/model.onnx", options);
    if (!test.module) {
      if (attempt == 0 &&
          diag.find("known at compile time") != std::string::npos)
        continue;
      why = diag.substr(0, 80);
      return false;
    }
    test.name = name;
    for (auto &[n, t] : inputs)
      if (!options.constantInputs.count(n))
        test.args.push_back(t);
    return true;
  }
  return false;
}

/// Runs the test's function: covered ops through their kernels, the rest
/// on the reference evaluator. Returns "" or what went wrong.
std::string runNodeTest(NodeTest &test, OpKernels &kernels) {
  func::FuncOp fn;
  for (auto f : test.module->getOps<func::FuncOp>())
    fn = f;
  Block &body = fn.getBody().front();
  if (body.getNumArguments() != test.args.size())
    return "argument count";
  DenseMap<Value, Tensor> env;
  for (auto [arg, t] : llvm::zip(body.getArguments(), test.args)) {
    auto want = toDType(cast<RankedTensorType>(arg.getType()).getElementType());
    env[arg] = t.dtype() == *want ? t : t.castTo(*want);
  }
  for (Operation &op : body) {
    SmallVector<Tensor> operands;
    for (Value v : op.getOperands())
      operands.push_back(env.lookup(v));
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      if (operands.size() != test.expected.size())
        return "output count";
      for (size_t i = 0; i < operands.size(); ++i) {
        std::string why;
        if (!sameValues(operands[i], test.expected[i], 1e-4, 1e-5, why))
          return "output " + std::to_string(i) + ": " + why;
      }
      return "";
    }
    auto reference = ref::Evaluator::evaluateOp(&op, operands);
    if (failed(reference))
      return "reference evaluation of " + op.getName().getStringRef().str() +
             " failed";
    auto it = test.kernels.find(&op);
    if (it == test.kernels.end()) {
      for (auto [v, t] : llvm::zip(op.getResults(), *reference))
        env[v] = t;
      continue;
    }
    std::vector<Tensor> results = kernels.run(it->second, operands);
    for (size_t i = 0; i < results.size(); ++i) {
      std::string why;
      if (!sameValues(results[i], (*reference)[i], 0, 0, why))
        return op.getName().getStringRef().str() +
               " kernel vs reference: " + why;
      env[op.getResult(i)] = results[i];
    }
  }
  return "no return";
}

TEST(OpKernels, OnnxNodeTests) {
  MLIRContext context;
  loadDialects(context);
  context.printOpOnDiagnostic(false);
  OpKernels kernels(context);
  std::vector<NodeTest> tests;
  std::map<std::string, int> passedByOp, failedByOp;
  std::vector<std::string> failures, notImported;
  for (const std::string &name : listDir(kNodeTestDir)) {
    if (!isCoveredNodeTest(name))
      continue;
    NodeTest test;
    std::string why;
    if (!importNodeTest(context, name, test, why)) {
      notImported.push_back(name + (why.empty() ? "" : " (" + why + ")"));
      continue;
    }
    bool any = false;
    test.module->walk([&](Operation *op) {
      if (!coveredOps().count(op->getName().getStringRef().str()))
        return;
      any = true;
      std::string error;
      int id = kernels.add(op, error);
      if (id < 0) {
        failures.push_back(name + ": " + error);
        ++failedByOp[op->getName().getStringRef().str()];
      } else {
        test.kernels[op] = id;
      }
    });
    if (any && !test.kernels.empty())
      tests.push_back(std::move(test));
  }
  ASSERT_GT(kernels.size(), 100) << "too few node tests found";
  std::string error;
  ASSERT_TRUE(kernels.compile(error)) << error;

  for (NodeTest &test : tests) {
    std::string why = runNodeTest(test, kernels);
    std::set<std::string> ops;
    for (auto &[op, id] : test.kernels)
      ops.insert(op->getName().getStringRef().str());
    for (const std::string &op : ops)
      ++(why.empty() ? passedByOp : failedByOp)[op];
    if (!why.empty())
      failures.push_back(test.name + ": " + why);
  }
  std::ostringstream table;
  for (const std::string &op : coveredOps())
    if (passedByOp.count(op) || failedByOp.count(op))
      table << "  " << op << ": " << passedByOp[op] << " passed, "
            << failedByOp[op] << " failed\n";
  std::cout << "ONNX node tests through compiled kernels (" << tests.size()
            << " tests, " << kernels.size() << " kernels):\n"
            << table.str() << "not imported (" << notImported.size() << "):";
  for (const std::string &n : notImported)
    std::cout << " " << n;
  std::cout << "\n";
  for (const std::string &f : failures)
    ADD_FAILURE() << f;
  // Every covered op that node tests exercise is reached (the OneHot tests
  // need a run-time depth, which the importer rejects).
  for (const char *op :
       {"nn.reshape", "nn.transpose", "nn.slice", "nn.concat", "nn.gather",
        "nn.gather_elements", "nn.gather_nd", "nn.broadcast_to", "nn.pad",
        "nn.trilu", "nn.cumsum", "nn.scatter_elements", "nn.scatter_nd",
        "nn.einsum", "nn.conv", "nn.conv_transpose", "nn.max_pool",
        "nn.avg_pool"})
    EXPECT_GT(passedByOp[op], 0) << op << " passed no node test";
}

//===----------------------------------------------------------------------===//
// Hand-written modules
//===----------------------------------------------------------------------===//

/// Deterministic inputs: floats in [-2, 2) (with `ties`, small integers so
/// window maxima repeat), integers in [lo, hi].
Tensor randomTensor(RankedTensorType type, std::mt19937 &rng, bool ties,
                    int64_t lo, int64_t hi) {
  DType dtype = *toDType(type.getElementType());
  Tensor t(dtype, toShape(type));
  std::uniform_real_distribution<double> real(-2.0, 2.0);
  std::uniform_int_distribution<int64_t> integer(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (isFloat(dtype))
      t.setDouble(i, ties ? (double)integer(rng) : real(rng));
    else
      t.setInt(i, integer(rng));
  }
  return t;
}

struct Case {
  Case(std::string source, int64_t lo = -3, int64_t hi = 3, bool ties = false)
      : source(std::move(source)), lo(lo), hi(hi), ties(ties) {}
  /// A func.func @f whose body is the op under test (plus nn.constants).
  std::string source;
  /// Inputs: integers drawn from [lo, hi]; floats with `ties` as well.
  int64_t lo, hi;
  bool ties;
  /// Relative tolerance of float results; 0: bit for bit.
  double rtol = 0;
  /// Fixed values for some arguments (by index), e.g. an optimizer step.
  std::map<unsigned, Tensor> fixed;
};

Tensor scalarI64(int64_t v) {
  Tensor t(DType::I64, {});
  t.setInt(0, v);
  return t;
}
Tensor scalarF32(double v) {
  Tensor t(DType::F32, {});
  t.setDouble(0, v);
  return t;
}

/// Runs every case's op through its kernel (all compiled in one JIT) and
/// compares it with the reference kernel.
void checkCases(const std::vector<Case> &cases) {
  MLIRContext context;
  loadDialects(context);
  std::string diag;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
    diag += d.str() + "\n";
    return success();
  });
  OpKernels kernels(context);
  std::vector<OwningOpRef<ModuleOp>> modules;
  std::vector<std::pair<Operation *, int>> ops;
  for (const Case &c : cases) {
    modules.push_back(parseSourceString<ModuleOp>(c.source, &context));
    ASSERT_TRUE(modules.back()) << diag << c.source;
    Operation *op = nullptr;
    modules.back()->walk([&](Operation *o) {
      if (coveredOps().count(o->getName().getStringRef().str()))
        op = o;
    });
    ASSERT_NE(op, nullptr) << c.source;
    std::string error;
    int id = kernels.add(op, error);
    ASSERT_GE(id, 0) << error << "\n" << c.source;
    ops.push_back({op, id});
  }
  std::string error;
  ASSERT_TRUE(kernels.compile(error)) << error;
  std::mt19937 rng(1234);
  for (size_t i = 0; i < cases.size(); ++i) {
    Operation *op = ops[i].first;
    SmallVector<Tensor> operands;
    for (auto [j, v] : llvm::enumerate(op->getOperands())) {
      auto it = cases[i].fixed.find(j);
      operands.push_back(it != cases[i].fixed.end()
                             ? it->second
                             : randomTensor(cast<RankedTensorType>(v.getType()),
                                            rng, cases[i].ties, cases[i].lo,
                                            cases[i].hi));
    }
    auto reference = ref::Evaluator::evaluateOp(op, operands);
    ASSERT_TRUE(succeeded(reference)) << diag << cases[i].source;
    std::vector<Tensor> got = kernels.run(ops[i].second, operands);
    ASSERT_EQ(got.size(), reference->size());
    for (size_t r = 0; r < got.size(); ++r) {
      std::string why;
      EXPECT_TRUE(sameValues(got[r], (*reference)[r], cases[i].rtol,
                             cases[i].rtol ? 1e-30 : 0.0, why))
          << "result " << r << ": " << why << "\n"
          << cases[i].source;
    }
  }
}

std::string wrap(const std::string &args, const std::string &results,
                 const std::string &body) {
  return "func.func @f(" + args + ") -> (" + results + ") {\n" + body + "\n}\n";
}

TEST(OpKernels, GradientOps) {
  std::vector<Case> cases;
  // Strides, asymmetric pads, dilation and groups at once.
  cases.push_back({wrap("%x: tensor<2x4x7x6xf32>, %dy: tensor<2x6x4x5xf32>",
                        "tensor<6x2x3x2xf32>",
                        "  %w = nn.conv_weight_grad %x, %dy strides [2, 1] "
                        "pads [1, 0, 1, 1] dilations [1, 2] group 2 : "
                        "tensor<2x4x7x6xf32>, tensor<2x6x4x5xf32> -> "
                        "tensor<6x2x3x2xf32>\n  return %w : "
                        "tensor<6x2x3x2xf32>")});
  // Repeated values so first-maximum tie-breaking matters.
  Case maxGrad{wrap("%x: tensor<2x3x7x6xf32>, %dy: tensor<2x3x4x5xf32>",
                    "tensor<2x3x7x6xf32>",
                    "  %g = nn.max_pool_grad %x, %dy kernel [3, 2] strides "
                    "[2, 1] pads [1, 0, 1, 1] dilations [1, 2] : "
                    "tensor<2x3x7x6xf32>, tensor<2x3x4x5xf32> -> "
                    "tensor<2x3x7x6xf32>\n  return %g : tensor<2x3x7x6xf32>")};
  maxGrad.ties = true;
  maxGrad.lo = 0;
  maxGrad.hi = 2;
  cases.push_back(maxGrad);
  for (const char *countPad : {"", " {count_include_pad = true}"})
    cases.push_back({wrap("%dy: tensor<2x3x4x5xf32>", "tensor<2x3x7x6xf32>",
                          std::string("  %g = nn.avg_pool_grad %dy kernel "
                                      "[3, 2] strides [2, 1] pads [1, 0, 1, "
                                      "1] dilations [1, 2]") +
                              countPad +
                              " : tensor<2x3x4x5xf32> -> "
                              "tensor<2x3x7x6xf32>\n  return %g : "
                              "tensor<2x3x7x6xf32>")});
  // Windows that overlap (stride 1 < kernel 3) so gradients accumulate.
  cases.push_back({wrap("%x: tensor<1x2x5x5xf32>, %dy: tensor<1x2x3x3xf32>",
                        "tensor<1x2x5x5xf32>",
                        "  %g = nn.max_pool_grad %x, %dy kernel [3, 3] "
                        "strides [1, 1] pads [0, 0, 0, 0] dilations [1, 1] : "
                        "tensor<1x2x5x5xf32>, tensor<1x2x3x3xf32> -> "
                        "tensor<1x2x5x5xf32>\n  return %g : "
                        "tensor<1x2x5x5xf32>"),
                   0, 1, true});
  // f32 sums in f64, as the reference: bit-exact.
  checkCases(cases);
}

TEST(OpKernels, ConvolutionsAndPools) {
  std::vector<Case> cases;
  cases.push_back({wrap("%x: tensor<2x4x7x6xf32>, %w: tensor<6x2x3x2xf32>, "
                        "%b: tensor<6xf32>",
                        "tensor<2x6x4x5xf32>",
                        "  %y = nn.conv %x, %w, %b strides [2, 1] pads [1, 0, "
                        "1, 1] dilations [1, 2] group 2 : tensor<2x4x7x6xf32>, "
                        "tensor<6x2x3x2xf32>, tensor<6xf32> -> "
                        "tensor<2x6x4x5xf32>\n  return %y : "
                        "tensor<2x6x4x5xf32>")});
  cases.push_back({wrap("%x: tensor<1x4x3x4xf32>, %w: tensor<4x3x3x2xf32>, "
                        "%b: tensor<6xf32>",
                        "tensor<1x6x7x11xf32>",
                        "  %y = nn.conv_transpose %x, %w, %b strides [2, 3] "
                        "pads [1, 0, 0, 1] dilations [1, 2] output_padding "
                        "[1, 0] group 2 : tensor<1x4x3x4xf32>, "
                        "tensor<4x3x3x2xf32>, tensor<6xf32> -> "
                        "tensor<1x6x7x11xf32>\n  return %y : "
                        "tensor<1x6x7x11xf32>")});
  cases.push_back({wrap("%x: tensor<2x3x7x6xf32>", "tensor<2x3x4x5xf32>",
                        "  %y = nn.avg_pool %x kernel [3, 2] strides [2, 1] "
                        "pads [1, 0, 1, 1] dilations [1, 2] "
                        "{count_include_pad = true} : tensor<2x3x7x6xf32> -> "
                        "tensor<2x3x4x5xf32>\n  return %y : "
                        "tensor<2x3x4x5xf32>")});
  // 3-D windows, integers (the reference computes them in double too).
  cases.push_back({wrap("%x: tensor<1x2x4x5x3xi32>", "tensor<1x2x2x3x2xi32>",
                        "  %y = nn.max_pool %x kernel [2, 2, 2] strides [2, "
                        "2, 1] pads [0, 1, 0, 1, 0, 0] dilations [1, 1, 1] : "
                        "tensor<1x2x4x5x3xi32> -> tensor<1x2x2x3x2xi32>\n  "
                        "return %y : tensor<1x2x2x3x2xi32>")});
  // f64 (accumulated in f64 like every float), 1-D, no bias.
  cases.push_back(
      {wrap("%x: tensor<2x3x9xf64>, %w: tensor<4x3x3xf64>", "tensor<2x4x3xf64>",
            "  %y = nn.conv %x, %w strides [2] pads [1, 0] "
            "dilations [2] group 1 : tensor<2x3x9xf64>, "
            "tensor<4x3x3xf64> -> tensor<2x4x3xf64>\n  "
            "return %y : tensor<2x4x3xf64>")});
  // Three operands, a diagonal and a broadcast `...` dim.
  cases.push_back({wrap("%a: tensor<2x3x3xf32>, %b: tensor<1x3x4xf32>, %c: "
                        "tensor<4xf32>",
                        "tensor<2x3xf32>",
                        "  %y = nn.einsum \"...ii,...ik,k->...i\" %a, %b, %c "
                        ": (tensor<2x3x3xf32>, tensor<1x3x4xf32>, "
                        "tensor<4xf32>) -> tensor<2x3xf32>\n  return %y : "
                        "tensor<2x3xf32>")});
  cases.push_back(
      {wrap("%a: tensor<2x3xi64>, %b: tensor<3x4xi64>", "tensor<4x2xi64>",
            "  %y = nn.einsum \"ij,jk->ki\" %a, %b : "
            "(tensor<2x3xi64>, tensor<3x4xi64>) -> "
            "tensor<4x2xi64>\n  return %y : tensor<4x2xi64>")});
  checkCases(cases);
}

TEST(OpKernels, ShapeOps) {
  std::vector<Case> cases;
  for (const char *mode : {"constant", "reflect", "edge", "wrap"})
    cases.push_back({wrap("%x: tensor<3x4xf32>", "tensor<8x5xf32>",
                          std::string("  %y = nn.pad %x mode \"") + mode +
                              "\" low [2, 3] high [3, -2] : tensor<3x4xf32> "
                              "-> tensor<8x5xf32>\n  return %y : "
                              "tensor<8x5xf32>")});
  cases.push_back(
      {wrap("%x: tensor<2x3xi32>, %v: tensor<i32>", "tensor<4x6xi32>",
            "  %y = nn.pad %x value %v mode \"constant\" low [1, "
            "2] high [1, 1] : tensor<2x3xi32>, tensor<i32> -> "
            "tensor<4x6xi32>\n  return %y : tensor<4x6xi32>")});
  for (const char *reduction : {"none", "add", "mul", "max", "min"}) {
    cases.push_back(
        {wrap("%d: tensor<3x5xf32>, %i: tensor<3x4xi64>, %u: tensor<3x4xf32>",
              "tensor<3x5xf32>",
              std::string("  %y = nn.scatter_elements %d[%i], %u axis 1 "
                          "reduction \"") +
                  reduction +
                  "\" : tensor<3x5xf32>, tensor<3x4xi64>, tensor<3x4xf32> "
                  "-> tensor<3x5xf32>\n  return %y : tensor<3x5xf32>"),
         -5, 4});
    cases.push_back(
        {wrap("%d: tensor<4x3xi32>, %i: tensor<5x1xi64>, %u: tensor<5x3xi32>",
              "tensor<4x3xi32>",
              std::string("  %y = nn.scatter_nd %d[%i], %u reduction \"") +
                  reduction +
                  "\" : tensor<4x3xi32>, tensor<5x1xi64>, tensor<5x3xi32> -> "
                  "tensor<4x3xi32>\n  return %y : tensor<4x3xi32>"),
         -4, 3});
  }
  cases.push_back({wrap("%x: tensor<2x5x3xi32>", "tensor<2x5x3xi32>",
                        "  %y = nn.cumsum %x axis 1 exclusive true reverse "
                        "true : tensor<2x5x3xi32>\n  return %y : "
                        "tensor<2x5x3xi32>")});
  cases.push_back({wrap("%x: tensor<2x5x3xf32>", "tensor<2x5x3xf32>",
                        "  %y = nn.cumsum %x axis 1 exclusive false reverse "
                        "false : tensor<2x5x3xf32>\n  return %y : "
                        "tensor<2x5x3xf32>")});
  // Indices out of [-depth, depth) give all-off rows.
  cases.push_back(
      {wrap("%i: tensor<2x3xi32>, %v: tensor<2xf32>", "tensor<2x4x3xf32>",
            "  %y = nn.one_hot %i, %v depth 4 axis 1 : "
            "tensor<2x3xi32>, tensor<2xf32> -> "
            "tensor<2x4x3xf32>\n  return %y : tensor<2x4x3xf32>"),
       -6, 5});
  cases.push_back(
      {wrap("%d: tensor<5x3xi8>, %i: tensor<2x2xi32>", "tensor<2x2x3xi8>",
            "  %y = nn.gather %d[%i] axis 0 : tensor<5x3xi8>, "
            "tensor<2x2xi32> -> tensor<2x2x3xi8>\n  return %y : "
            "tensor<2x2x3xi8>"),
       -5, 4});
  cases.push_back({wrap("%x: tensor<2x4x5xi1>", "tensor<2x4x5xi1>",
                        "  %y = nn.trilu %x upper false k -1 : "
                        "tensor<2x4x5xi1>\n  return %y : tensor<2x4x5xi1>"),
                   0, 1});
  cases.push_back({wrap("%x: tensor<3x1x2xf16>", "tensor<2x3x4x2xf16>",
                        "  %y = nn.broadcast_to %x : tensor<3x1x2xf16> -> "
                        "tensor<2x3x4x2xf16>\n  return %y : "
                        "tensor<2x3x4x2xf16>")});
  cases.push_back({wrap("%x: tensor<4x6xbf16>", "tensor<2x2xbf16>",
                        "  %y = nn.slice %x starts [3, 5] sizes [2, 2] steps "
                        "[-2, -3] : tensor<4x6xbf16> -> tensor<2x2xbf16>\n  "
                        "return %y : tensor<2x2xbf16>")});
  checkCases(cases);
}

TEST(OpKernels, OptimizerClippingSchedules) {
  std::vector<Case> cases;
  const std::string adamArgs =
      "%p: tensor<37xf32>, %g: tensor<37xf32>, %m: tensor<37xf32>, %v: "
      "tensor<37xf32>, %lr: tensor<f32>, %s: tensor<i64>";
  for (auto [wd, step] :
       {std::pair<double, int64_t>{0.0, 1}, {0.01, 1}, {0.01, 7}}) {
    Case c{wrap(adamArgs, "tensor<37xf32>, tensor<37xf32>, tensor<37xf32>",
                "  %a, %b, %c = peft.adamw %p, %g, %m, %v, %lr, %s {beta1 = "
                "0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, "
                "weight_decay = " +
                    std::to_string(wd) +
                    " : f64} : tensor<37xf32>, tensor<f32>, tensor<i64>\n  "
                    "return %a, %b, %c : tensor<37xf32>, tensor<37xf32>, "
                    "tensor<37xf32>")};
    c.fixed = {{4, scalarF32(1e-3)}, {5, scalarI64(step)}};
    cases.push_back(c);
  }
  const std::string sgdArgs =
      "%p: tensor<2x9xf32>, %g: tensor<2x9xf32>, %b: tensor<2x9xf32>, %lr: "
      "tensor<f32>, %s: tensor<i64>";
  for (const char *attrs :
       {"{}",
        "{momentum = 0.9 : f64, dampening = 0.1 : f64, weight_decay = "
        "0.01 : f64}",
        "{momentum = 0.9 : f64, nesterov = true}"})
    for (int64_t step : {1, 3}) {
      Case c{wrap(sgdArgs, "tensor<2x9xf32>, tensor<2x9xf32>",
                  std::string("  %a, %c = peft.sgd %p, %g, %b, %lr, %s ") +
                      attrs +
                      " : tensor<2x9xf32>, tensor<f32>, tensor<i64>\n  "
                      "return %a, %c : tensor<2x9xf32>, tensor<2x9xf32>")};
      c.fixed = {{3, scalarF32(0.05)}, {4, scalarI64(step)}};
      cases.push_back(c);
    }
  for (double maxNorm : {1.0, 100.0})
    cases.push_back({wrap("%a: tensor<3x5xf32>, %b: tensor<7xf32>",
                          "tensor<3x5xf32>, tensor<7xf32>, tensor<f32>",
                          "  %x, %y, %n = peft.clip_grad_norm %a, %b "
                          "{max_norm = " +
                              std::to_string(maxNorm) +
                              " : f64} : tensor<3x5xf32>, tensor<7xf32>\n  "
                              "return %x, %y, %n : tensor<3x5xf32>, "
                              "tensor<7xf32>, tensor<f32>")});
  for (const char *kind : {"constant", "linear", "cosine"})
    for (int64_t step : {1, 3, 4, 9, 12}) {
      Case c{wrap("%s: tensor<i64>", "tensor<f32>",
                  std::string("  %lr = peft.lr_schedule %s {kind = \"") + kind +
                      "\", base_lr = 0.002 : f64, warmup_steps = 3, "
                      "total_steps = 10, num_cycles = 0.75 : f64} : "
                      "tensor<i64> -> tensor<f32>\n  return %lr : "
                      "tensor<f32>")};
      c.fixed = {{0, scalarI64(step)}};
      cases.push_back(c);
    }
  // Statement by statement in f64 with the reference's roundings.
  checkCases(cases);
}

TEST(OpKernels, ReftPositionsMasksAndHouseholderSweeps) {
  std::vector<Case> cases;
  // Prompt lengths 0..9 against f3+l2: short prompts (L / 2 < n) included.
  for (const char *group : {"all", "first", "last"}) {
    int64_t count = std::string(group) == "all" ? 5 : 3;
    std::string result = "tensor<6x" + std::to_string(count) + "xi64>";
    cases.push_back(
        {wrap("%l: tensor<6xi64>", result,
              std::string("  %p = peft.reft_positions %l "
                          "{first_n = 3 : i64, last_n = 2 : i64, "
                          "group = \"") +
                  group + "\", offset = 1 : i64} : tensor<6xi64> -> " + result +
                  "\n  return %p : " + result),
         0, 9});
  }
  // Positions -1 (none), repeated, and every row of T = 5.
  cases.push_back({wrap("%p: tensor<3x4xi64>", "tensor<3x5x1xf32>",
                        "  %m = peft.intervention_mask %p : tensor<3x4xi64> "
                        "-> tensor<3x5x1xf32>\n  return %m : "
                        "tensor<3x5x1xf32>"),
                   -1, 4});
  for (const char *type : {"f64", "f32"}) {
    std::string t = type;
    std::string x = "tensor<6x3x" + t + ">", s = "tensor<4x6x3x" + t + ">";
    std::string m = "tensor<6x2x" + t + ">", sm = "tensor<4x6x2x" + t + ">";
    cases.push_back({wrap("%x: " + x, s,
                          "  %s = peft.householder_sweep %x : " + x + " -> " +
                              s + "\n  return %s : " + s)});
    for (const char *adjoint : {"", " {adjoint}"})
      cases.push_back({wrap("%x: " + x + ", %m: " + m, sm,
                            "  %s = peft.householder_sweep %x, %m" +
                                std::string(adjoint) + " : " + x + ", " + m +
                                " -> " + sm + "\n  return %s : " + sm)});
  }
  // Statement by statement in f64, each slice read back from the result.
  checkCases(cases);
}

TEST(OpKernels, DropoutMaskIsTheReferences) {
  std::vector<Case> cases;
  // Steps 1 and 9 train (different masks); step 0 is evaluation.
  for (const char *type : {"f32", "f64"})
    for (int64_t step : {0, 1, 9}) {
      std::string t = "tensor<7x100x" + std::string(type) + ">";
      Case c{wrap("%x: " + t + ", %s: tensor<i64>", t,
                  "  %y = peft.dropout %x, %s {p = 0.3 : f64, seed = "
                  "4294967301 : i64, stream = 6 : i64} : " +
                      t + ", tensor<i64>\n  return %y : " + t)};
      c.fixed = {{1, scalarI64(step)}};
      cases.push_back(c);
    }
  checkCases(cases);
}

} // namespace
