// The compiled program as C++ structs, mirroring runtime/proto/program.proto
// field for field. peftc fills these and encodes them; the runtime decodes
// and validates them. The codec is protobuf wire format written by hand so
// the runtime needs no libprotobuf.
#pragma once

#include "peft/DType.h"

#include <cstdint>
#include <string>
#include <vector>

namespace peft::program {

struct Buffer {
  enum class Kind : uint8_t { Arena = 0, Param = 1, Constant = 2, View = 3 };
  Kind kind = Kind::Arena;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  uint32_t param = 0;
  std::string constant;
  uint32_t base = 0;
  std::string name;
};

struct Param {
  enum class Init : uint8_t { Zeros = 0, File = 1, Data = 2, Ones = 3 };
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  bool trainable = false;
  Init init = Init::Zeros;
  std::string file;
  uint64_t fileOffset = 0, fileLength = 0;
  uint64_t dataOffset = 0, dataLength = 0;
  std::string peftKey;
  bool keyTransposed = false;
  std::string stateOf;
  std::string stateName;
};

struct Kernel {
  std::string symbol;
  uint32_t numArgs = 0;
};

struct Arg {
  uint32_t buffer = 0;
  std::string name;
  bool isStep = false;
  /// > 0: the argument indexes a table of this many rows (token ids into
  /// the embedding), so its values must lie in [0, indexLimit).
  int64_t indexLimit = 0;
};

struct Result {
  uint32_t buffer = 0;
  std::string metric;
  std::string name;
  /// Key in adapter_model.safetensors ("" = not saved): Session::saveAdapter
  /// runs the function (which then takes no arguments) and saves this result
  /// with the params' keys. (Initialised so that {buffer, metric, name}
  /// aggregates stay complete.)
  std::string peftKey{};
};

struct Launch {
  uint32_t kernel = 0;
  std::vector<uint32_t> args;
  int64_t extent = 0;
};

struct Gemm {
  enum class Epilogue : uint8_t {
    None = 0,
    Relu = 1,
    GeluErf = 2,
    GeluTanh = 3
  };
  uint32_t a = 0, b = 0, c = 0;
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool transA = false, transB = false;
  double alpha = 1.0, beta = 0.0;
  int64_t strideA = 0, strideB = 0, strideC = 0;
  bool hasBias = false;
  uint32_t bias = 0;
  Epilogue epilogue = Epilogue::None;
  DType dtype = DType::F32;
};

struct Copy {
  uint32_t src = 0, dst = 0;
};

struct Step {
  enum class Kind : uint8_t { Launch = 1, Gemm = 2, Copy = 3 };
  Kind kind = Kind::Launch;
  Launch launch;
  Gemm gemm;
  Copy copy;
};

struct Function {
  std::string name;
  std::vector<Arg> args;
  std::vector<Result> results;
  std::vector<Step> steps;
};

struct Program {
  uint32_t formatVersion = 1;
  std::string producer;
  std::vector<Buffer> buffers;
  std::vector<Param> params;
  std::vector<Kernel> kernels;
  std::vector<Function> functions;
  uint64_t arenaBytes = 0;
  uint64_t arenaAlignment = 64;
  std::string specJson;
  std::string adapterConfigJson;
  std::string weightsPath;
  uint64_t bufferBytesSum = 0;
  std::string initData;

  const Function *function(const std::string &name) const;
};

/// Protobuf wire format of program.proto (fields at their default values are
/// omitted, as protobuf does).
std::string encodeProgram(const Program &program);
/// Decodes and validates (buffer/param/kernel indices in range, arena buffers
/// inside arena_bytes, byte sizes consistent with dtype and shape, kernel arg
/// counts). Errors name the field and the index.
bool decodeProgram(const uint8_t *data, size_t size, Program &out,
                   std::string &error);

} // namespace peft::program
