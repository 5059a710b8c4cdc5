// The hand-written protobuf codec of program.proto: round trips, the
// validation the executor relies on (each error names the field), and
// corrupted inputs (every truncation, byte flips) that must never crash.
#include "TestProgram.h"

#include <gtest/gtest.h>

#include <random>

using namespace peft;
using namespace peft::program;

namespace {

std::string encoded(const Program &p) { return encodeProgram(p); }

bool decode(const std::string &bytes, Program &out, std::string &error) {
  return decodeProgram(reinterpret_cast<const uint8_t *>(bytes.data()),
                       bytes.size(), out, error);
}

} // namespace

TEST(ProgramCodec, RoundTripsEveryField) {
  Program p = testprog::everyFieldProgram();
  std::string bytes = encoded(p);
  Program q;
  std::string error;
  ASSERT_TRUE(decode(bytes, q, error)) << error;
  EXPECT_EQ(encoded(q), bytes);
  EXPECT_EQ(q.formatVersion, 1u);
  EXPECT_EQ(q.producer, p.producer);
  EXPECT_EQ(q.weightsPath, "/weights/base.safetensors");
  EXPECT_EQ(q.specJson, p.specJson);
  EXPECT_EQ(q.adapterConfigJson, p.adapterConfigJson);
  EXPECT_EQ(q.initData, p.initData);
  EXPECT_EQ(q.arenaBytes, p.arenaBytes);
  EXPECT_EQ(q.arenaAlignment, 64u);
  EXPECT_EQ(q.bufferBytesSum, p.bufferBytesSum);
  ASSERT_EQ(q.buffers.size(), p.buffers.size());
  for (size_t i = 0; i < p.buffers.size(); ++i) {
    const Buffer &a = p.buffers[i], &b = q.buffers[i];
    EXPECT_EQ(a.kind, b.kind) << i;
    EXPECT_EQ(a.dtype, b.dtype) << i;
    EXPECT_EQ(a.shape, b.shape) << i;
    EXPECT_EQ(a.offset, b.offset) << i;
    EXPECT_EQ(a.bytes, b.bytes) << i;
    EXPECT_EQ(a.param, b.param) << i;
    EXPECT_EQ(a.constant, b.constant) << i;
    EXPECT_EQ(a.base, b.base) << i;
    EXPECT_EQ(a.name, b.name) << i;
  }
  ASSERT_EQ(q.params.size(), p.params.size());
  const Param &w1 = q.params[0], &w2 = q.params[2], &m = q.params.back();
  EXPECT_EQ(w1.init, Param::Init::File);
  EXPECT_EQ(w1.fileOffset, testprog::kWeightsPrefix);
  EXPECT_EQ(w1.fileLength, 48u);
  EXPECT_FALSE(w1.trainable);
  EXPECT_TRUE(w2.trainable);
  EXPECT_TRUE(w2.keyTransposed);
  EXPECT_EQ(w2.peftKey, "base_model.model.fc2.lora_B.weight");
  EXPECT_EQ(w2.dataOffset, 12u);
  EXPECT_EQ(w2.dataLength, 24u);
  EXPECT_EQ(m.init, Param::Init::Ones);
  EXPECT_EQ(m.stateOf, "fc2.weight");
  EXPECT_EQ(m.stateName, "momentum_buffer");
  ASSERT_EQ(q.functions.size(), 4u);
  const Function &saved = q.functions[3];
  EXPECT_TRUE(saved.args.empty());
  ASSERT_EQ(saved.results.size(), 1u);
  EXPECT_EQ(saved.results[0].peftKey, "prompt_embeddings");
  EXPECT_EQ(saved.results[0].name, "table");
  EXPECT_TRUE(q.functions[0].results[0].peftKey.empty());
  const Function &t = q.functions[0];
  EXPECT_EQ(t.name, "train_step");
  ASSERT_EQ(t.results.size(), 3u);
  EXPECT_EQ(t.results[1].name, "fc1.bias.grad");
  EXPECT_EQ(q.functions[1].args[0].isStep, true);
  EXPECT_EQ(q.functions[2].args.back().name, "ids");
  EXPECT_EQ(q.functions[2].args.back().indexLimit, 50257);
  const Gemm &g = t.steps.back().gemm;
  ASSERT_EQ(t.steps.back().kind, Step::Kind::Gemm);
  EXPECT_EQ(g.alpha, -0.5);
  EXPECT_EQ(g.beta, 0.25);
  EXPECT_TRUE(g.transA && g.transB);
  EXPECT_EQ(g.strideA, 7);
  EXPECT_EQ(g.strideC, 11);
  EXPECT_EQ(g.epilogue, Gemm::Epilogue::GeluTanh);
  const Step &fc1 = t.steps[0];
  ASSERT_EQ(fc1.kind, Step::Kind::Gemm);
  EXPECT_TRUE(fc1.gemm.hasBias);
  EXPECT_EQ(fc1.gemm.epilogue, Gemm::Epilogue::Relu);
  EXPECT_EQ(fc1.gemm.batch, 1);
  EXPECT_EQ(fc1.gemm.alpha, 1.0);
  const Step &mse = t.steps[2];
  ASSERT_EQ(mse.kind, Step::Kind::Launch);
  EXPECT_EQ(mse.launch.args.size(), 5u);
  EXPECT_EQ(mse.launch.extent, 1);
  EXPECT_EQ(q.functions[1].steps.back().kind, Step::Kind::Copy);
}

TEST(ProgramCodec, WireFormatDetails) {
  // Hand-assembled bytes: an unpacked repeated shape, an unknown field of
  // each wire type, fields out of order.
  std::string b;
  auto key = [&](int field, int type) {
    b.push_back((char)(field << 3 | type));
  };
  // buffers { shape: 2 (unpacked), dtype: F32, shape: 3, bytes: 24,
  //           unknown 20: fixed32 }
  std::string buf;
  buf += "\x18\x02";                                 // field 3 varint 2
  buf += "\x10\x07";                                 // dtype F32
  buf += "\x18\x03";                                 // field 3 varint 3
  buf += "\x28\x18";                                 // bytes 24
  buf += std::string("\xa5\x01\x01\x02\x03\x04", 6); // field 20, fixed32
  key(8, 0);
  b += "\x40"; // arena_alignment 64 (before the buffers: order is free)
  key(3, 2);
  b.push_back((char)buf.size());
  b += buf;
  key(7, 0);
  b += "\x40"; // arena_bytes 64
  key(1, 0);
  b += "\x01";                             // format_version
  b += std::string("\xb8\x06\x96\x01", 4); // unknown 103 varint
  b += std::string("\xb9\x06"
                   "12345678",
                   10); // unknown 103 fixed64
  b += std::string("\xba\x06\x03"
                   "abc",
                   6); // unknown 103 bytes
  Program p;
  std::string error;
  ASSERT_TRUE(decode(b, p, error)) << error;
  ASSERT_EQ(p.buffers.size(), 1u);
  EXPECT_EQ(p.buffers[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(p.buffers[0].bytes, 24u);
  EXPECT_EQ(p.arenaAlignment, 64u);

  // Negative int64 (a packed -1 shape dim) is a 10-byte varint and then a
  // validation error, not a huge allocation.
  Program neg;
  neg.buffers.push_back({});
  neg.buffers[0].shape = {-1};
  std::string bytes = encoded(neg);
  EXPECT_NE(
      bytes.find(std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10)),
      std::string::npos);
  EXPECT_FALSE(decode(bytes, p, error));
  EXPECT_EQ(error, "program: buffers[0].shape: negative or overflowing "
                   "dimensions");
}

struct BadCase {
  const char *name;
  void (*mutate)(Program &);
  const char *error;
};

class ProgramValidation : public ::testing::TestWithParam<BadCase> {};

TEST_P(ProgramValidation, NamesTheField) {
  Program p = testprog::mlpProgram("/w", 2);
  GetParam().mutate(p);
  Program q;
  std::string error;
  EXPECT_FALSE(decode(encoded(p), q, error));
  EXPECT_EQ(error, GetParam().error);
}

uint32_t bufferNamed(const Program &p, const std::string &name) {
  for (uint32_t i = 0; i < p.buffers.size(); ++i)
    if (p.buffers[i].name == name)
      return i;
  return ~0u;
}

const BadCase kBadCases[] = {
    {"version", [](Program &p) { p.formatVersion = 2; },
     "program: format_version: unsupported version 2 (this runtime reads 1)"},
    {"launch_arg_range",
     [](Program &p) { p.functions[0].steps[2].launch.args[1] = 999; },
     "program: functions[0].steps[2].launch.args[1]: buffer 999 out of range "
     "(22 buffers)"},
    {"launch_arg_count",
     [](Program &p) { p.functions[0].steps[2].launch.args.pop_back(); },
     "program: functions[0].steps[2].launch.args: 4 buffers, but kernel 'mse' "
     "takes 5"},
    {"kernel_range",
     [](Program &p) { p.functions[1].steps[0].launch.kernel = 6; },
     "program: functions[1].steps[0].launch.kernel: kernel 6 out of range (6 "
     "kernels)"},
    {"arena_outside",
     [](Program &p) { p.arenaBytes = p.buffers.back().offset; },
     "program: buffers[21]: [1024, +24) outside arena_bytes 1024"},
    {"arena_misaligned", [](Program &p) { p.buffers[3].offset += 4; },
     "program: buffers[3].offset: 4 is not a multiple of arena_alignment 64"},
    {"bytes_vs_shape", [](Program &p) { p.buffers[3].bytes = 31; },
     "program: buffers[3].bytes: 31, but f32 2x4 has 32"},
    {"param_buffer_shape",
     [](Program &p) {
       p.buffers[0].shape = {3, 4};
     },
     "program: buffers[0]: f32 3x4 but param 'fc1.weight' is f32 4x3"},
    {"param_range", [](Program &p) { p.buffers[1].param = 3; },
     "program: buffers[1].param: param 3 out of range (3 params)"},
    {"view_outside",
     [](Program &p) {
       Buffer v;
       v.kind = Buffer::Kind::View;
       v.shape = {2};
       v.bytes = 8;
       v.base = bufferNamed(p, "new_b1");
       v.offset = 8;
       p.buffers.push_back(v);
     },
     "program: buffers[22]: [8, +8) outside its base buffers[16] (12 bytes)"},
    {"view_cycle",
     [](Program &p) {
       Buffer v;
       v.kind = Buffer::Kind::View;
       v.bytes = 4;
       v.base = (uint32_t)p.buffers.size() + 1;
       p.buffers.push_back(v);
       v.base = (uint32_t)p.buffers.size() - 1;
       p.buffers.push_back(v);
     },
     "program: buffers[22].base: views form a cycle or leave range"},
    {"data_outside", [](Program &p) { p.params[2].dataOffset = 20; },
     "program: params[2].data_offset: [20, +24) outside init_data (36 bytes)"},
    {"file_length", [](Program &p) { p.params[0].fileLength = 44; },
     "program: params[0].file_length: 44 bytes, but f32 4x3 needs 48"},
    {"duplicate_param", [](Program &p) { p.params[2].name = "fc1.bias"; },
     "program: params[2].name: 'fc1.bias' also names params[1]"},
    {"state_of", [](Program &p) { p.params[2].stateOf = "fc9"; },
     "program: params[2].state_of: no param named 'fc9'"},
    {"gemm_reads_past", [](Program &p) { p.functions[0].steps[0].gemm.k = 5; },
     "program: functions[0].steps[0].gemm.a: the gemm reads 40 bytes, buffer "
     "3 has 32"},
    {"gemm_batch_zero",
     [](Program &p) { p.functions[0].steps[1].gemm.batch = 0; },
     "program: functions[0].steps[1].gemm.batch: out of range (0)"},
    {"gemm_c_overlap",
     [](Program &p) {
       Gemm &g = p.functions[0].steps[1].gemm;
       g.batch = 2;
       g.strideC = 1;
     },
     "program: functions[0].steps[1].gemm.stride_c: 1 makes batches of C "
     "overlap (m*n = 4)"},
    {"gemm_bias", [](Program &p) { p.functions[0].steps[0].gemm.bias = 2; },
     "program: functions[0].steps[0].gemm.bias: buffer 2 has 24 bytes, a [3] "
     "bias needs 12"},
    {"copy_sizes", [](Program &p) { p.functions[1].steps.back().copy.src = 3; },
     "program: functions[1].steps[5].copy: src has 32 bytes, dst 24"},
    {"step_counter", [](Program &p) { p.functions[1].args[0].buffer = 3; },
     "program: functions[1].args[0]: the step counter must be an i64 scalar, "
     "not f32 2x4"},
    {"duplicate_function",
     [](Program &p) { p.functions[2].name = "train_step"; },
     "program: functions[2].name: 'train_step' also names functions[0]"},
    {"index_limit_on_floats",
     [](Program &p) { p.functions[0].args[1].indexLimit = 50; },
     "program: functions[0].args[1]: index_limit 50 must be 0, or positive "
     "on an integer input"},
    {"alignment", [](Program &p) { p.arenaAlignment = 48; },
     "program: arena_alignment: 48 is not a power of two <= 4096"},
};

INSTANTIATE_TEST_SUITE_P(Errors, ProgramValidation,
                         ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase> &info) {
                           return std::string(info.param.name);
                         });

TEST(ProgramCodec, TruncationNamesTheField) {
  Program p = testprog::mlpProgram("/w");
  std::string bytes = encoded(p);
  Program q;
  std::string error;
  // Cut inside init_data (the last field): its declared length overruns.
  EXPECT_FALSE(decode(bytes.substr(0, bytes.size() - 3), q, error));
  EXPECT_EQ(error, "program: init_data: truncated: length 36 but 33 bytes "
                   "left");
  // functions { steps { gemm { alpha: <3 of its 8 bytes> } } }: the
  // enclosing lengths are consistent, the innermost field is cut.
  std::string gemm = "\x51"
                     "abc";
  std::string step = "\x12" + std::string(1, (char)gemm.size()) + gemm;
  std::string fn = "\x22" + std::string(1, (char)step.size()) + step;
  std::string program = "\x32" + std::string(1, (char)fn.size()) + fn;
  EXPECT_FALSE(decode(program, q, error));
  EXPECT_EQ(error, "program: functions[0].steps[0].gemm.alpha: truncated: "
                   "needs 8 bytes, 3 left");
  // A varint that never ends.
  EXPECT_FALSE(decode("\x38\xff\xff", q, error));
  EXPECT_EQ(error, "program: arena_bytes: truncated varint");
  // A step with none of launch, gemm, copy.
  EXPECT_FALSE(decode(std::string("\x32\x02\x22\x00", 4), q, error));
  EXPECT_EQ(error, "program: functions[0].steps[0]: no launch, gemm or copy");
}

TEST(ProgramCodec, SavedResultsAreCheckedOnDecode) {
  std::string error;
  Program q;
  // The adapter is saved without data: a saved result's function takes no
  // arguments.
  Program p = testprog::everyFieldProgram();
  p.functions[0].results[0].peftKey = "loss";
  EXPECT_FALSE(decode(encoded(p), q, error));
  EXPECT_EQ(error, "program: functions[0].results[0].peft_key: 'loss' is "
                   "saved from function 'train_step', which takes 2 "
                   "arguments (a saved result's function takes none)");
  // One tensor per key in adapter_model.safetensors.
  p = testprog::everyFieldProgram();
  p.functions[3].results[0].peftKey = p.params[2].peftKey;
  EXPECT_FALSE(decode(encoded(p), q, error));
  EXPECT_EQ(error, "program: functions[3].results[0].peft_key: "
                   "'base_model.model.fc2.lora_B.weight' is saved by "
                   "params[2].peft_key already");
}

TEST(ProgramCodec, CorruptInputNeverCrashes) {
  for (int accumulation : {1, 2}) {
    std::string bytes = encoded(testprog::everyFieldProgram());
    if (accumulation == 1)
      bytes = encoded(testprog::mlpProgram("/w"));
    Program q;
    std::string error;
    size_t rejected = 0;
    for (size_t n = 0; n < bytes.size(); ++n) {
      error.clear();
      bool ok = decode(bytes.substr(0, n), q, error);
      rejected += !ok;
      EXPECT_TRUE(ok || !error.empty()) << n;
    }
    // Most prefixes cut a field or leave a dangling reference.
    EXPECT_GT(rejected, bytes.size() * 9 / 10);
    std::mt19937 rng(1234 + accumulation);
    for (size_t i = 0; i < bytes.size(); ++i)
      for (uint8_t mask : {0x01, 0x02, 0x10, 0x40, 0x80, 0xff}) {
        std::string flipped = bytes;
        flipped[i] = (char)(flipped[i] ^ mask);
        if (decode(flipped, q, error)) // what decodes must re-encode
          EXPECT_FALSE(encodeProgram(q).empty());
      }
    for (int trial = 0; trial < 2000; ++trial) {
      std::string noisy = bytes;
      for (int k = 0; k < 4; ++k)
        noisy[rng() % noisy.size()] = (char)rng();
      decode(noisy, q, error);
    }
  }
}
