// Trains a compiled program through the runtime's C++ API:
//   embed PROGRAM.so DATA.safetensors [--steps N] [--threads T]
//         [--weights BASE] [--out ADAPTER_DIR]
// Each step takes the next rows of every tensor in DATA (as many as the
// program's train_step was compiled for), wrapping around at the end.
#include "peft/SafeTensors.h"
#include "peft/runtime.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace {

int usage(const char *argv0) {
  std::fprintf(stderr,
               "usage: %s PROGRAM.so DATA.safetensors [--steps N] "
               "[--threads T] [--weights BASE] [--out ADAPTER_DIR]\n",
               argv0);
  return 1;
}

int fail(const std::string &message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 3)
    return usage(argv[0]);
  std::string programPath = argv[1], dataPath = argv[2], out;
  long steps = 10;
  peft::rt::Options options;
  for (int i = 3; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc)
      return usage(argv[0]);
    const char *value = argv[++i];
    if (flag == "--steps")
      steps = std::strtol(value, nullptr, 10);
    else if (flag == "--threads")
      options.threads = (int)std::strtol(value, nullptr, 10);
    else if (flag == "--weights")
      options.weightsPath = value;
    else if (flag == "--out")
      out = value;
    else
      return usage(argv[0]);
  }

  std::string error;
  auto program = peft::rt::Program::loadShared(programPath, error);
  if (!program)
    return fail(error);
  auto session = peft::rt::Session::create(program, options, error);
  if (!session)
    return fail(error);
  peft::SafeTensorsFile data;
  if (!peft::readSafeTensors(dataPath, data, error))
    return fail(error);

  // Rows per step: what train_step's inputs were compiled for.
  const peft::program::Function *train = program->ir().function("train_step");
  if (!train)
    return fail("the program has no train_step");
  std::map<std::string, int64_t> rowsOf;
  for (const peft::program::Arg &arg : train->args)
    if (!arg.isStep) {
      const auto &shape = program->ir().buffers[arg.buffer].shape;
      rowsOf[arg.name] = shape.empty() ? 0 : shape[0];
    }

  for (long step = 1; step <= steps; ++step) {
    peft::rt::Batch batch;
    for (const auto &[name, rows] : rowsOf) {
      const peft::Tensor *t = data.find(name);
      if (!t)
        return fail("'" + dataPath + "' has no tensor '" + name + "'");
      if (rows == 0 || t->rank() == 0) {
        batch[name] = *t;
        continue;
      }
      int64_t available = t->shape()[0] / rows;
      if (available == 0)
        return fail("'" + name + "' has fewer rows than one batch");
      int64_t first = ((step - 1) % available) * rows;
      peft::Shape shape = t->shape();
      shape[0] = rows;
      peft::Tensor slice(t->dtype(), shape);
      std::memcpy(slice.mutableBytes(),
                  t->bytes() + first * slice.byteSize() / rows,
                  slice.byteSize());
      batch[name] = std::move(slice);
    }
    peft::rt::StepMetrics metrics;
    if (!session->trainStep(batch, step, metrics, error))
      return fail(error);
    std::printf("step %ld loss %.6g grad_norm %.6g lr %.6g\n", step,
                metrics.loss, metrics.gradNorm, metrics.lr);
  }
  if (!out.empty()) {
    if (!session->saveAdapter(out, error))
      return fail(error);
    std::printf("adapter saved to %s\n", out.c_str());
  }
  return 0;
}
