// Helpers shared by the peft dialect unit tests: parse a module, run it with
// the reference evaluator in f64, collect the errors it reports.
#pragma once

#include "codegen/reference/Evaluator.h"
#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace peft::test {

/// An f64 tensor of `shape` holding `values` in row-major order.
inline Tensor f64(Shape shape, const std::vector<double> &values) {
  Tensor t(DType::F64, std::move(shape));
  EXPECT_EQ((size_t)t.numel(), values.size());
  for (size_t i = 0; i < values.size() && (int64_t)i < t.numel(); ++i)
    t.setDouble((int64_t)i, values[i]);
  return t;
}

inline Tensor i64(Shape shape, const std::vector<int64_t> &values) {
  Tensor t(DType::I64, std::move(shape));
  EXPECT_EQ((size_t)t.numel(), values.size());
  for (size_t i = 0; i < values.size() && (int64_t)i < t.numel(); ++i)
    t.setInt((int64_t)i, values[i]);
  return t;
}

inline std::vector<double> valuesOf(const Tensor &t) {
  std::vector<double> v(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i)
    v[i] = t.getDouble(i);
  return v;
}

/// Element-wise |actual - expected| <= tol.
inline void expectNear(const Tensor &actual,
                       const std::vector<double> &expected,
                       double tol = 1e-13) {
  ASSERT_EQ((size_t)actual.numel(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(actual.getDouble((int64_t)i), expected[i], tol)
        << "element " << i;
}

class PeftEvalTest : public ::testing::Test {
protected:
  PeftEvalTest()
      : handler_(&context_, [this](mlir::Diagnostic &diag) {
          errors += diag.str() + "\n";
          return mlir::success();
        }) {
    context_.loadDialect<mlir::func::FuncDialect, peft::nn::NNDialect,
                         peft::pir::PeftDialect>();
  }

  /// Parses `source` and makes an f64 evaluator for it.
  void parse(const std::string &source) {
    module_ = mlir::parseSourceString<mlir::ModuleOp>(source, &context_);
    ASSERT_TRUE(module_) << errors;
    ref::EvalOptions options;
    options.promoteToF64 = true;
    evaluator_ = std::make_unique<ref::Evaluator>(*module_, options);
  }

  /// Runs function `name`; on failure the test reads `errors`.
  mlir::FailureOr<std::vector<Tensor>> run(llvm::ArrayRef<Tensor> inputs,
                                           llvm::StringRef name = "") {
    return evaluator_->run(inputs, name);
  }

  /// Runs and expects success.
  std::vector<Tensor> runOk(llvm::ArrayRef<Tensor> inputs,
                            llvm::StringRef name = "") {
    auto out = run(inputs, name);
    EXPECT_TRUE(mlir::succeeded(out)) << errors;
    return mlir::succeeded(out) ? *out : std::vector<Tensor>{};
  }

  ref::Evaluator &evaluator() { return *evaluator_; }

  std::string errors;

private:
  mlir::MLIRContext context_;
  mlir::ScopedDiagnosticHandler handler_;
  mlir::OwningOpRef<mlir::ModuleOp> module_;
  std::unique_ptr<ref::Evaluator> evaluator_;
};

} // namespace peft::test
