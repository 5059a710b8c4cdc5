// One program.Gemm step bound to a oneDNN matmul primitive, created once
// when the session loads (primitive creation costs milliseconds; a step
// must not pay it).
#pragma once

#include "peft/Program.h"

#include <memory>
#include <string>

namespace peft::rt {

class GemmOp {
public:
  /// `a`, `b`, `c` and `bias` (null without one) are the operands' storage,
  /// fixed for the session's lifetime. `biasType` is the bias buffer's dtype.
  static std::unique_ptr<GemmOp> create(const program::Gemm &gemm, void *a,
                                        void *b, void *c, void *bias,
                                        DType biasType, std::string &error);
  ~GemmOp();
  /// C = epilogue(alpha * op(A) op(B) + beta * C + bias), every batch.
  bool run(std::string &error);

  struct Impl;

private:
  GemmOp() = default;
  std::unique_ptr<Impl> impl_;
};

} // namespace peft::rt
