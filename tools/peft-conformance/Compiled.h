//===- Compiled.h - conformance tests through compiled code -----*- C++ -*-===//
#pragma once

#include "frontends/onnx/Importer.h"
#include "peft/Tensor.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace peft::conformance {

/// A node test that passed on the reference evaluator, as it was imported.
struct CompiledCase {
  std::string name;
  std::string modelPath;
  onnx_import::ImportOptions options;
  /// The graph inputs fed at run time (those not bound as constants).
  std::vector<std::pair<std::string, Tensor>> inputs;
  std::vector<Tensor> expected;
};

/// Whether a result is close enough to the expected output (else why not).
using CloseFn =
    std::function<bool(const Tensor &got, const Tensor &want, std::string &)>;

/// Compiles every test (loop kernels of `batchSize` tests per JIT) and runs
/// it on the runtime; prints each failure and counts the outcomes.
void runCompiled(const std::vector<CompiledCase> &tests, size_t batchSize,
                 const CloseFn &close, bool verbose, int &passed, int &failed);

} // namespace peft::conformance
