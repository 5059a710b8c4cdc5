// Writes the hand-built test program as C++ source defining
// peftc_program_data/peftc_program_size (compiled into a shared object with
// TestProgramKernels.cpp), or, with --data DIR, the weights file and a
// safetensors training set for it (DIR/base.bin, DIR/data.safetensors).
#include "TestProgram.h"

#include "peft/SafeTensors.h"

#include <cstdio>
#include <fstream>

using namespace peft;
using namespace peft::testprog;

namespace {

int writeData(const std::string &dir) {
  std::ofstream weights(dir + "/base.bin", std::ios::binary | std::ios::trunc);
  std::string bytes = weightsFileBytes();
  weights.write(bytes.data(), (std::streamsize)bytes.size());
  if (!weights.good()) {
    std::fprintf(stderr, "cannot write %s/base.bin\n", dir.c_str());
    return 1;
  }
  // 8 batches of kRows examples, from a fixed linear teacher so the loss can
  // fall.
  constexpr int64_t kExamples = 8 * kRows;
  Tensor x(DType::F32, {kExamples, kIn}), t(DType::F32, {kExamples, kOut});
  for (int64_t e = 0; e < kExamples; ++e) {
    for (int64_t i = 0; i < kIn; ++i)
      x.mutableData<float>()[e * kIn + i] = inputAt(e, 0, i);
    for (int64_t j = 0; j < kOut; ++j) {
      float y = 0.1f * (float)j;
      for (int64_t i = 0; i < kIn; ++i)
        y += 0.25f * (float)(i - j) * x.data<float>()[e * kIn + i];
      t.mutableData<float>()[e * kOut + j] = y;
    }
  }
  std::string error;
  if (!writeSafeTensors(dir + "/data.safetensors", {{"x", x}, {"t", t}}, {},
                        error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc == 3 && std::string(argv[1]) == "--data")
    return writeData(argv[2]);
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.cpp | --data DIR\n", argv[0]);
    return 1;
  }
  // No weights path: whoever loads the object names the file.
  std::string bytes = program::encodeProgram(mlpProgram(""));
  std::ofstream out(argv[1], std::ios::trunc);
  out << "#include <stdint.h>\n"
      << "extern \"C\" const uint8_t peftc_program_data[] = {";
  for (size_t i = 0; i < bytes.size(); ++i)
    out << (i % 16 ? " " : "\n  ") << (unsigned)(uint8_t)bytes[i] << ",";
  out << "\n};\nextern \"C\" const uint64_t peftc_program_size = "
      << bytes.size() << ";\n";
  if (!out.good()) {
    std::fprintf(stderr, "cannot write %s\n", argv[1]);
    return 1;
  }
  return 0;
}
