//===- Diagnostics.h - user-facing error printing for the tools -*- C++ -*-===//
#pragma once

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/raw_ostream.h"

namespace peft::tools {

/// Prints diagnostics as "tool: error: file: node 'name': message", or
/// "file:line:col: error: message" where a real position is known.
class UserDiagnosticHandler : public mlir::ScopedDiagnosticHandler {
public:
  UserDiagnosticHandler(mlir::MLIRContext *ctx, llvm::StringRef tool,
                        llvm::raw_ostream &os = llvm::errs());
  bool hadError() const { return hadError_; }

private:
  std::string tool_;
  llvm::raw_ostream &os_;
  bool hadError_ = false;
};

} // namespace peft::tools
