// The trainer's data loader: the program's input contract, JSONL padding and
// masks, safetensors files and folders, every bad-data case with its message,
// the documented shuffle and the drop-last batching policy.
#include "TestUtil.h"

#include "peft/Data.h"
#include "peft/SafeTensors.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

using namespace peft;
using namespace peft::rt;

namespace {

/// A program whose train_step takes input_ids, attention_mask and labels
/// ([batch, seq] i64) plus the step counter.
program::Program lmProgram(int64_t batch, int64_t seq,
                           const std::string &specJson) {
  program::Program p;
  auto addBuffer = [&](DType dtype, Shape shape, const std::string &name) {
    program::Buffer b;
    b.dtype = dtype;
    b.shape = std::move(shape);
    b.bytes = (uint64_t)(numElements(b.shape) * (int64_t)dtypeSize(dtype));
    b.name = name;
    p.buffers.push_back(b);
    return (uint32_t)(p.buffers.size() - 1);
  };
  program::Function train;
  train.name = "train_step";
  train.args.push_back(
      {addBuffer(DType::I64, {batch, seq}, "input_ids"), "input_ids", false});
  train.args.push_back({addBuffer(DType::I64, {}, "step"), "step", true});
  train.args.push_back({addBuffer(DType::I64, {batch, seq}, "attention_mask"),
                        "attention_mask", false});
  train.args.push_back(
      {addBuffer(DType::I64, {batch, seq}, "labels"), "labels", false});
  p.functions.push_back(train);
  program::Function forward;
  forward.name = "forward";
  forward.results.push_back(
      {addBuffer(DType::F32, {batch, seq, 37}, "logits"), "", "logits"});
  p.functions.push_back(forward);
  p.specJson = specJson;
  return p;
}

DataConfig lmConfig(int64_t batch = 2, int64_t seq = 6, int64_t vocab = 50) {
  DataConfig c;
  c.inputs = {{"input_ids", DType::I64, {batch, seq}},
              {"attention_mask", DType::I64, {batch, seq}},
              {"labels", DType::I64, {batch, seq}}};
  c.batchSize = batch;
  c.padTokenId = 7;
  c.ignoreIndex = -100;
  c.vocabSize = vocab;
  return c;
}

std::vector<int64_t> ints(const Tensor &t) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < t.numel(); ++i)
    v.push_back(t.getInt(i));
  return v;
}

/// [rows, seq] i64 with element (r, s) = base + 10 r + s.
Tensor rowsTensor(int64_t rows, int64_t seq, int64_t base) {
  Tensor t(DType::I64, {rows, seq});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t s = 0; s < seq; ++s)
      t.setInt(r * seq + s, base + 10 * r + s);
  return t;
}

class DataTest : public peft::test::TempDirTest {
protected:
  /// Opening `p` with `config` fails with a message naming `p` and holding
  /// `problem`.
  void expectOpenError(const std::string &p, const DataConfig &config,
                       const std::string &problem) {
    std::string error;
    EXPECT_EQ(Dataset::open(p, config, error), nullptr);
    EXPECT_NE(error.find(p), std::string::npos) << error;
    EXPECT_NE(error.find(problem), std::string::npos) << error;
  }
  void writeSt(const std::string &p,
               const std::vector<std::pair<std::string, Tensor>> &tensors) {
    std::string error;
    ASSERT_TRUE(writeSafeTensors(p, tensors, {}, error)) << error;
  }
  /// A valid LM data file of `rows` examples (token ids < 50).
  void writeLm(const std::string &p, int64_t rows, int64_t seq = 6) {
    Tensor mask(DType::I64, {rows, seq});
    for (int64_t i = 0; i < mask.numel(); ++i)
      mask.setInt(i, 1);
    writeSt(p, {{"input_ids", rowsTensor(rows, seq, 0)},
                {"attention_mask", mask},
                {"labels", rowsTensor(rows, seq, 0)}});
  }
};

//===----------------------------------------------------------------------===//
// The program's contract
//===----------------------------------------------------------------------===//

TEST_F(DataTest, ConfigFromProgramReadsArgsAndSpec) {
  program::Program p = lmProgram(
      4, 16,
      R"({"methods": [], "training": {"inputs": {}, "loss": {"type": )"
      R"("cross_entropy", "logits": "logits", "labels": "labels", )"
      R"("shift": "causal", "ignore_index": -1}, "gradient_accumulation_)"
      R"(steps": 3, "seed": 1234, "batch_size": 4, "shuffle": false, )"
      R"("pad_token_id": 50256, "vocab_size": 50257}})");
  DataConfig c;
  std::string error;
  ASSERT_TRUE(dataConfigFromProgram(p, "train_step", c, error)) << error;
  ASSERT_EQ(c.inputs.size(), 3u); // the step counter is not data
  EXPECT_EQ(c.inputs[0].name, "input_ids");
  EXPECT_EQ(c.inputs[1].name, "attention_mask");
  EXPECT_EQ(c.inputs[2].name, "labels");
  EXPECT_EQ(c.inputs[2].shape, (Shape{4, 16}));
  EXPECT_EQ(c.batchSize, 4);
  EXPECT_EQ(c.microBatches, 3);
  EXPECT_EQ(c.seed, 1234u);
  EXPECT_FALSE(c.shuffle);
  EXPECT_EQ(c.padTokenId, 50256);
  EXPECT_EQ(c.ignoreIndex, -1);
  EXPECT_EQ(c.labelsKey, "labels");
  EXPECT_EQ(c.vocabSize, 50257);
}

TEST_F(DataTest, ConfigDefaultsAndVocabularyFromLogits) {
  program::Program p = lmProgram(2, 8, "");
  DataConfig c;
  std::string error;
  ASSERT_TRUE(dataConfigFromProgram(p, "train_step", c, error)) << error;
  EXPECT_EQ(c.microBatches, 1);
  EXPECT_EQ(c.seed, 42u);
  EXPECT_TRUE(c.shuffle);
  EXPECT_EQ(c.padTokenId, 0);
  EXPECT_EQ(c.ignoreIndex, -100);
  EXPECT_EQ(c.vocabSize, 37); // forward's logits [2, 8, 37]
}

TEST_F(DataTest, ConfigErrors) {
  DataConfig c;
  std::string error;
  program::Program p = lmProgram(2, 8, "");
  EXPECT_FALSE(dataConfigFromProgram(p, "apply_update", c, error));
  EXPECT_NE(error.find("no function 'apply_update'"), std::string::npos);
  p.specJson = "{\"training\": {\"seed\": \"x\"}}";
  EXPECT_FALSE(dataConfigFromProgram(p, "train_step", c, error));
  EXPECT_NE(error.find("training.seed is not an integer"), std::string::npos)
      << error;
  p.specJson = "{\"training\": ";
  EXPECT_FALSE(dataConfigFromProgram(p, "train_step", c, error));
  EXPECT_NE(error.find("spec_json is not valid JSON"), std::string::npos);
  p.specJson = "";
  p.buffers[p.functions[0].args[2].buffer].shape = {3, 8};
  EXPECT_FALSE(dataConfigFromProgram(p, "train_step", c, error));
  EXPECT_NE(error.find("disagree on the batch size (2 and 3)"),
            std::string::npos)
      << error;
}

//===----------------------------------------------------------------------===//
// JSONL
//===----------------------------------------------------------------------===//

TEST_F(DataTest, JsonlPadsMasksAndIgnoresPadding) {
  std::string p = path("d.jsonl");
  writeFile(p, "[1, 2, 3]\n"
               "{\"input_ids\": [4, 5], \"labels\": [-100, 5]}\r\n"
               "   \n"
               "{\"input_ids\": [1, 2, 3, 4, 5, 6], \"extra\": \"kept out\"}\n"
               "{\"input_ids\": [9], \"attention_mask\": [0]}");
  std::string error;
  auto data = Dataset::open(p, lmConfig(), error);
  ASSERT_TRUE(data) << error;
  ASSERT_EQ(data->size(), 4);
  Batch b = data->gather({0, 1, 2, 3});
  EXPECT_EQ(b.at("input_ids").shape(), (Shape{4, 6}));
  EXPECT_EQ(ints(b.at("input_ids")), (std::vector<int64_t>{1, 2, 3, 7, 7, 7, //
                                                           4, 5, 7, 7, 7, 7, //
                                                           1, 2, 3, 4, 5, 6, //
                                                           9, 7, 7, 7, 7, 7}));
  EXPECT_EQ(ints(b.at("attention_mask")),
            (std::vector<int64_t>{1, 1, 1, 0, 0, 0, //
                                  1, 1, 0, 0, 0, 0, //
                                  1, 1, 1, 1, 1, 1, //
                                  0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(ints(b.at("labels")),
            (std::vector<int64_t>{1,    2,    3,    -100, -100, -100, //
                                  -100, 5,    -100, -100, -100, -100, //
                                  1,    2,    3,    4,    5,    6,    //
                                  9,    -100, -100, -100, -100, -100}));
  // gather takes rows in the order asked.
  Batch swapped = data->gather({2, 0});
  EXPECT_EQ(ints(swapped.at("input_ids")),
            (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 1, 2, 3, 7, 7, 7}));
}

TEST_F(DataTest, JsonlFillsTheProgramsDtypes) {
  DataConfig c = lmConfig();
  c.inputs[0].dtype = DType::I32;
  c.inputs[1].dtype = DType::F32;
  std::string p = path("d.jsonl");
  writeFile(p, "[3, 4]\n");
  std::string error;
  auto data = Dataset::open(p, c, error);
  ASSERT_TRUE(data) << error;
  Batch b = data->gather({0});
  EXPECT_EQ(b.at("input_ids").dtype(), DType::I32);
  EXPECT_EQ(ints(b.at("input_ids")), (std::vector<int64_t>{3, 4, 7, 7, 7, 7}));
  ASSERT_EQ(b.at("attention_mask").dtype(), DType::F32);
  EXPECT_EQ(b.at("attention_mask").getDouble(1), 1.0);
  EXPECT_EQ(b.at("attention_mask").getDouble(2), 0.0);
}

TEST_F(DataTest, JsonlErrorsNameTheLine) {
  struct Case {
    std::string text, problem;
  } cases[] = {
      {"[1,2]\n[1,2,3,4,5,6,7]\n",
       "d.jsonl:2: \"input_ids\" has 7 tokens, more than the compiled "
       "sequence length 6"},
      {"[1]\n\n{\"labels\": [1]}\n", "d.jsonl:3: missing key \"input_ids\""},
      {"[1, 2.5]\n", "d.jsonl:1: \"input_ids\"[1] is not an integer"},
      {"[1, \"2\"]\n", "d.jsonl:1: \"input_ids\"[1] is not an integer"},
      {"[1, 2]\n[3, 50]\n",
       "d.jsonl:2: \"input_ids\"[1]: token id 50 is outside the vocabulary "
       "[0, 50)"},
      {"[-1]\n", "d.jsonl:1: \"input_ids\"[0]: token id -1 is outside"},
      {"{\"input_ids\": [1], \"labels\": [77]}\n",
       "d.jsonl:1: \"labels\"[0]: token id 77 is outside"},
      {"{\"input_ids\": [1, 2}\n", "d.jsonl:1: invalid JSON"},
      {"[]\n", "d.jsonl:1: \"input_ids\" is empty"},
      {"42\n", "d.jsonl:1: expected an array of token ids or an object"},
      {"{\"input_ids\": 3}\n", "d.jsonl:1: \"input_ids\" is not an array"},
      {"{\"input_ids\": [1], \"labels\": [1, 2, 3, 4, 5, 6, 7]}\n",
       "d.jsonl:1: \"labels\" has 7 tokens"},
      {"\n  \n", "holds no examples"},
      {"", "the file is empty"},
  };
  for (const Case &c : cases) {
    std::string p = path("d.jsonl");
    writeFile(p, c.text);
    SCOPED_TRACE(c.text);
    expectOpenError(p, lmConfig(), c.problem);
  }
  // ignore_index is a valid label; unknown vocabulary skips the check.
  std::string p = path("ok.jsonl");
  writeFile(p, "{\"input_ids\": [1, 2], \"labels\": [-100, 2]}\n[49]\n");
  std::string error;
  EXPECT_TRUE(Dataset::open(p, lmConfig(), error)) << error;
  writeFile(p, "[1000000]\n");
  EXPECT_TRUE(Dataset::open(p, lmConfig(2, 6, /*vocab=*/0), error)) << error;
  expectOpenError(path("missing.jsonl"), lmConfig(), "cannot open");
}

TEST_F(DataTest, IdsAreCheckedAgainstTheTableTheyIndex) {
  // A sequence classifier: labels are 3 classes, input_ids index a
  // 40-row embedding table (the program's Arg::indexLimit).
  DataConfig c = lmConfig(2, 4, /*vocab=*/3);
  c.inputs[0].indexLimit = 40;
  c.inputs[2].shape = {2};
  std::string p = path("cls.jsonl");
  writeFile(p, "{\"input_ids\": [39, 12], \"labels\": 2}\n");
  std::string error;
  EXPECT_TRUE(Dataset::open(p, c, error)) << error;
  writeFile(p, "{\"input_ids\": [40], \"labels\": 1}\n");
  expectOpenError(p, c,
                  "cls.jsonl:1: \"input_ids\"[0]: token id 40 is outside "
                  "the vocabulary [0, 40)");
  writeFile(p, "{\"input_ids\": [4], \"labels\": 3}\n");
  expectOpenError(p, c,
                  "cls.jsonl:1: \"labels\": class id 3 is outside [0, 3)");
  // Safetensors columns get the same check.
  std::string st = path("cls.safetensors");
  Tensor ids = rowsTensor(2, 4, 5); // up to 5 + 10 + 3 = 18
  Tensor mask = rowsTensor(2, 4, 1);
  Tensor labels(DType::I64, {2});
  labels.setInt(0, 0);
  labels.setInt(1, 2);
  writeSt(st, {{"input_ids", ids}, {"attention_mask", mask}, {"labels", labels}});
  c.inputs[0].indexLimit = 18;
  expectOpenError(st, c, "key \"input_ids\" row 1 position 3: token id 18 "
                         "is outside the vocabulary [0, 18)");
  c.inputs[0].indexLimit = 19;
  EXPECT_TRUE(Dataset::open(st, c, error)) << error;
}

TEST_F(DataTest, JsonlNeedsEveryOtherInputByName) {
  DataConfig c = lmConfig();
  c.inputs.push_back({"token_type_ids", DType::I64, {2, 6}});
  c.inputs.push_back({"prompt_length", DType::I64, {2}});
  std::string p = path("d.jsonl");
  writeFile(p, "{\"input_ids\": [1, 2], \"token_type_ids\": [1, 1], "
               "\"prompt_length\": 1}\n");
  std::string error;
  auto data = Dataset::open(p, c, error);
  ASSERT_TRUE(data) << error;
  Batch b = data->gather({0, 0});
  EXPECT_EQ(ints(b.at("token_type_ids")),
            (std::vector<int64_t>{1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(ints(b.at("prompt_length")), (std::vector<int64_t>{1, 1}));
  writeFile(p, "{\"input_ids\": [1, 2], \"prompt_length\": 1}\n");
  expectOpenError(p, c, "d.jsonl:1: missing key \"token_type_ids\"");
}

TEST_F(DataTest, JsonlWithoutTokenIds) {
  // A program taking features and a target: no input_ids needed.
  DataConfig c;
  c.inputs = {{"x", DType::F32, {2, 3}}, {"y", DType::F32, {2}}};
  c.batchSize = 2;
  c.labelsKey = "";
  std::string p = path("d.jsonl");
  writeFile(p, "{\"x\": [1, 2.5, -3], \"y\": 0.25}\n{\"x\": [4], \"y\": 7}\n");
  std::string error;
  auto data = Dataset::open(p, c, error);
  ASSERT_TRUE(data) << error;
  Batch b = data->gather({1, 0});
  const Tensor &x = b.at("x");
  EXPECT_EQ(x.getDouble(0), 4.0);
  EXPECT_EQ(x.getDouble(1), 0.0); // padded with 0
  EXPECT_EQ(x.getDouble(4), 2.5);
  EXPECT_EQ(x.getDouble(5), -3.0);
  EXPECT_EQ(b.at("y").getDouble(0), 7.0);
  EXPECT_EQ(b.at("y").getDouble(1), 0.25);
  writeFile(p, "[1, 2]\n");
  expectOpenError(p, c, "d.jsonl:1: missing key \"x\"");
  writeFile(p, "{\"x\": [1], \"y\": [2]}\n");
  expectOpenError(p, c, "d.jsonl:1: key \"y\" is not a single number");
}

TEST_F(DataTest, CorruptedJsonlNeverCrashes) {
  // Random byte edits of a valid file: every result is either data whose
  // every example has the compiled shape, or an error naming the file.
  const std::string valid =
      "{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 3]}\n[4, 5]\n"
      "{\"input_ids\": [6], \"attention_mask\": [1]}\n";
  std::mt19937_64 rng(1);
  const char alphabet[] = "[]{}\",:-0123456789e.\\ \nabtrufl\x01\xff";
  int opened = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text = valid;
    for (int edits = 1 + (int)(rng() % 3); edits > 0; --edits) {
      size_t at = (size_t)(rng() % text.size());
      switch (rng() % 3) {
      case 0:
        text[at] = alphabet[rng() % (sizeof alphabet - 1)];
        break;
      case 1:
        text.erase(at, 1);
        break;
      default:
        text.insert(at, 1, alphabet[rng() % (sizeof alphabet - 1)]);
      }
    }
    std::string p = path("fuzz.jsonl"), error;
    writeFile(p, text);
    auto data = Dataset::open(p, lmConfig(), error);
    if (!data) {
      EXPECT_EQ(error.rfind(p, 0), 0u) << error;
      continue;
    }
    ++opened;
    std::vector<int64_t> all;
    for (int64_t i = 0; i < data->size(); ++i)
      all.push_back(i);
    Batch b = data->gather(all);
    EXPECT_EQ(b.at("input_ids").shape(), (Shape{data->size(), 6}));
  }
  EXPECT_GT(opened, 0); // some edits keep the file valid (whitespace, digits)
}

//===----------------------------------------------------------------------===//
// Safetensors
//===----------------------------------------------------------------------===//

TEST_F(DataTest, SafetensorsFileAndFolderConcatenateAlongAxis0) {
  std::filesystem::create_directory(path("folder"));
  writeLm(path("folder/b.safetensors"), 2); // rows 0..1 of b come second
  Tensor mask(DType::I64, {3, 6});
  writeSt(path("folder/a.safetensors"), {{"labels", rowsTensor(3, 6, 20)},
                                         {"input_ids", rowsTensor(3, 6, 10)},
                                         {"attention_mask", mask},
                                         {"unused", Tensor(DType::F32, {1})}});
  writeFile(path("folder/notes.txt"), "not data");
  std::string error;
  auto data = Dataset::open(path("folder"), lmConfig(2, 6, 100), error);
  ASSERT_TRUE(data) << error;
  ASSERT_EQ(data->size(), 5);
  Batch b = data->gather({4, 0, 3});
  // Row 4 = b's row 1 (base 0), row 0 = a's row 0 (base 10), row 3 = b's
  // row 0.
  EXPECT_EQ(ints(b.at("input_ids")),
            (std::vector<int64_t>{10, 11, 12, 13, 14, 15, //
                                  10, 11, 12, 13, 14, 15, //
                                  0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(ints(b.at("labels"))[6], 20);

  auto single =
      Dataset::open(path("folder/b.safetensors"), lmConfig(2, 6, 100), error);
  ASSERT_TRUE(single) << error;
  EXPECT_EQ(single->size(), 2);
}

TEST_F(DataTest, SafetensorsErrorsNameFileAndKey) {
  const DataConfig c = lmConfig(2, 6, 50);
  std::string p = path("d.safetensors");
  Tensor mask(DType::I64, {4, 6});

  writeSt(p, {{"input_ids", rowsTensor(4, 6, 0)}, {"attention_mask", mask}});
  expectOpenError(p, c, "missing key \"labels\"");

  writeSt(p, {{"input_ids", rowsTensor(4, 6, 0).castTo(DType::I32)},
              {"attention_mask", mask},
              {"labels", rowsTensor(4, 6, 0)}});
  expectOpenError(p, c, "key \"input_ids\" is i32 but the program needs i64");

  writeSt(p, {{"input_ids", rowsTensor(4, 5, 0)},
              {"attention_mask", mask},
              {"labels", rowsTensor(4, 6, 0)}});
  expectOpenError(
      p, c,
      "key \"input_ids\" has shape 4x5 but the program needs Nx6 (N examples");

  writeSt(p, {{"input_ids", rowsTensor(4, 6, 0)},
              {"attention_mask", mask},
              {"labels", rowsTensor(3, 6, 0)}});
  expectOpenError(p, c,
                  "key \"labels\" has 3 examples but \"input_ids\" has 4");

  Tensor ids = rowsTensor(4, 6, 0);
  ids.setInt(2 * 6 + 3, 50);
  writeSt(p, {{"input_ids", ids},
              {"attention_mask", mask},
              {"labels", rowsTensor(4, 6, 0)}});
  expectOpenError(p, c,
                  "key \"input_ids\" row 2 position 3: token id 50 is outside "
                  "the vocabulary [0, 50)");

  Tensor labels = rowsTensor(4, 6, 0);
  labels.setInt(0, -100); // ignore_index: fine
  labels.setInt(7, -5);
  writeSt(p, {{"input_ids", rowsTensor(4, 6, 0)},
              {"attention_mask", mask},
              {"labels", labels}});
  expectOpenError(p, c,
                  "key \"labels\" row 1 position 1: token id -5 is outside");

  writeFile(p, "");
  expectOpenError(p, c, "the file is empty");

  // A header length past the end of the file (corrupt header).
  writeFile(p, std::string("\xff\x00\x00\x00\x00\x00\x00\x00{}", 10));
  expectOpenError(p, c, "runs past the end of the file");
  std::string header = "{\"input_ids\": 5}";
  std::string bytes(8, '\0');
  bytes[0] = (char)header.size();
  writeFile(p, bytes + header);
  expectOpenError(p, c, "not a valid safetensors file");

  // Offsets past the end of the data.
  header = "{\"input_ids\":{\"dtype\":\"I64\",\"shape\":[1,6],"
           "\"data_offsets\":[0,48]}}";
  bytes.assign(8, '\0');
  bytes[0] = (char)header.size();
  writeFile(p, bytes + header + std::string(16, '\0'));
  expectOpenError(p, c, "lie outside the 16 data bytes");

  writeSt(p, {{"input_ids", Tensor(DType::I64, {0, 6})},
              {"attention_mask", Tensor(DType::I64, {0, 6})},
              {"labels", Tensor(DType::I64, {0, 6})}});
  expectOpenError(p, c, "holds no examples");

  std::filesystem::create_directory(path("empty"));
  expectOpenError(path("empty"), c, "holds no *.safetensors files");

  // The folder error names the bad file inside it.
  std::filesystem::create_directory(path("mixed"));
  writeLm(path("mixed/a.safetensors"), 2);
  writeFile(path("mixed/b.safetensors"), "");
  expectOpenError(path("mixed"), c, "mixed/b.safetensors: the file is empty");
}

//===----------------------------------------------------------------------===//
// Order and batching
//===----------------------------------------------------------------------===//

TEST(EpochOrderTest, Mt19937_64IsTheStandardOne) {
  // The standard fixes this value ([rand.predef]): the shuffle is therefore
  // the same with every conforming library.
  std::mt19937_64 rng;
  rng.discard(9999);
  EXPECT_EQ(rng(), 9981545732273789042ULL);
}

TEST(EpochOrderTest, ShuffleIsADeterministicPermutation) {
  std::vector<int64_t> identity(10);
  for (int i = 0; i < 10; ++i)
    identity[(size_t)i] = i;
  EXPECT_EQ(epochOrder(10, false, 42, 3), identity);

  std::string state1, state2;
  auto a = epochOrder(1000, true, 42, 0, &state1);
  auto b = epochOrder(1000, true, 42, 0, &state2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(state1, state2);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i)
    ASSERT_EQ(sorted[(size_t)i], i);
  EXPECT_NE(a, epochOrder(1000, true, 42, 1));
  EXPECT_NE(a, epochOrder(1000, true, 43, 0));
  // Pinned: the documented derivation (splitmix64 seed, mt19937_64,
  // rejection-sampled Fisher-Yates) reimplemented independently in Python
  // gives this order; a change here breaks resuming old checkpoints.
  EXPECT_EQ(epochSeed(42, 0), 0x4d9b3f1ec9cf6b1bULL);
  EXPECT_EQ(epochOrder(8, true, 42, 0),
            (std::vector<int64_t>{1, 0, 3, 4, 2, 7, 6, 5}));
}

TEST(EpochOrderTest, ShuffleIsUniform) {
  // Every element lands in every position about equally often.
  constexpr int n = 5, trials = 20000;
  int counts[n][n] = {};
  for (int t = 0; t < trials; ++t) {
    auto order = epochOrder(n, true, 7, t);
    for (int pos = 0; pos < n; ++pos)
      ++counts[order[(size_t)pos]][pos];
  }
  for (int e = 0; e < n; ++e)
    for (int pos = 0; pos < n; ++pos)
      EXPECT_NEAR(counts[e][pos], trials / n, 250) << e << " at " << pos;
}

TEST_F(DataTest, LoaderDropsThePartialStepAndWalksEpochs) {
  // 10 examples, batch 2 x accumulation 2: 2 steps per epoch, 2 dropped.
  std::string p = path("d.safetensors");
  writeLm(p, 10, 6);
  DataConfig c = lmConfig(2, 6, 1000);
  c.microBatches = 2;
  c.seed = 5;
  std::string error;
  auto data = Dataset::open(p, c, error);
  ASSERT_TRUE(data) << error;
  DataLoader loader(data, c);
  EXPECT_EQ(loader.rowsPerStep(), 4);
  EXPECT_EQ(loader.stepsPerEpoch(), 2);

  auto rowsOf = [](const Batch &b) {
    std::vector<int64_t> rows;
    const Tensor &ids = b.at("input_ids");
    for (int64_t r = 0; r < ids.shape()[0]; ++r)
      rows.push_back(ids.getInt(r * 6) / 10);
    return rows;
  };
  auto e0 = epochOrder(10, true, 5, 0), e1 = epochOrder(10, true, 5, 1);
  EXPECT_EQ(rowsOf(loader.next()),
            std::vector<int64_t>(e0.begin(), e0.begin() + 4));
  EXPECT_EQ(rowsOf(loader.next()),
            std::vector<int64_t>(e0.begin() + 4, e0.begin() + 8));
  EXPECT_EQ(loader.position(), (DataPosition{0, 8}));
  Batch third = loader.next(); // the tail (2 examples) is skipped
  EXPECT_EQ(rowsOf(third), std::vector<int64_t>(e1.begin(), e1.begin() + 4));
  EXPECT_EQ(third.at("labels").shape(), (Shape{4, 6}));
  EXPECT_EQ(loader.position(), (DataPosition{1, 4}));

  // No shuffling: file order.
  c.shuffle = false;
  DataLoader plain(data, c);
  EXPECT_EQ(rowsOf(plain.next()), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(rowsOf(plain.next()), (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(rowsOf(plain.next()), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST_F(DataTest, SeekResumesTheExactStream) {
  std::string p = path("d.safetensors");
  writeLm(p, 9, 6);
  DataConfig c = lmConfig(2, 6, 1000);
  std::string error;
  auto data = Dataset::open(p, c, error);
  ASSERT_TRUE(data) << error;
  DataLoader a(data, c);
  for (int i = 0; i < 7; ++i) // into epoch 1 (4 steps per epoch)
    a.next();
  DataPosition saved = a.position();
  std::string rng = a.rngState();
  EXPECT_EQ(saved, (DataPosition{1, 6}));

  DataLoader b(data, c);
  ASSERT_TRUE(b.seek(saved, error)) << error;
  EXPECT_EQ(b.rngState(), rng);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(ints(a.next().at("input_ids")), ints(b.next().at("input_ids")))
        << "step " << i;

  EXPECT_FALSE(b.seek({0, 3}, error)); // not on a step boundary
  EXPECT_NE(error.find("does not fit"), std::string::npos) << error;
  EXPECT_FALSE(b.seek({0, 10}, error));
  EXPECT_FALSE(b.seek({-1, 0}, error));
}

TEST(CountTokensTest, MaskOrIdsOrRows) {
  Batch b;
  Tensor mask(DType::I64, {2, 3});
  mask.setInt(0, 1);
  mask.setInt(4, 1);
  b["attention_mask"] = mask;
  b["input_ids"] = Tensor(DType::I64, {2, 3});
  EXPECT_EQ(countTokens(b), 2);
  b.erase("attention_mask");
  EXPECT_EQ(countTokens(b), 6);
  Batch rows;
  rows["pixel_values"] = Tensor(DType::F32, {4, 3, 8, 8});
  EXPECT_EQ(countTokens(rows), 4);
}

} // namespace
