// A training binary in miniature: the test program's bytes and kernel table
// are linked in (as `peftc -o trainer` links them), found by
// Program::linked(), and trained for 3 steps.
//   linked-trainer WEIGHTS_FILE_TO_WRITE
#include "TestProgram.h"

#include "peft/runtime.h"

#include <cstdio>
#include <fstream>

using namespace peft;
using namespace peft::testprog;

int main(int argc, char **argv) {
  if (argc != 2)
    return 1;
  std::ofstream(argv[1], std::ios::binary) << weightsFileBytes();
  std::string error;
  auto program = rt::Program::linked(error);
  if (!program) {
    std::fprintf(stderr, "error: %s\n", error.c_str());
    return 1;
  }
  rt::Options options;
  options.weightsPath = argv[1];
  auto session = rt::Session::create(program, options, error);
  if (!session) {
    std::fprintf(stderr, "error: %s\n", error.c_str());
    return 1;
  }
  for (int64_t step = 1; step <= 3; ++step) {
    Tensor x(DType::F32, {kRows, kIn}), t(DType::F32, {kRows, kOut});
    for (int64_t i = 0; i < kRows * kIn; ++i)
      x.mutableData<float>()[i] = inputAt(step, 0, i);
    for (int64_t i = 0; i < kRows * kOut; ++i)
      t.mutableData<float>()[i] = targetAt(step, 0, i);
    rt::StepMetrics m;
    if (!session->trainStep({{"x", x}, {"t", t}}, step, m, error)) {
      std::fprintf(stderr, "error: %s\n", error.c_str());
      return 1;
    }
    std::printf("step %lld loss %.9g\n", (long long)step, m.loss);
  }
  return 0;
}
