// Training data for peftrt: safetensors (a file, or a folder whose
// *.safetensors files are concatenated along axis 0 in name order) holding
// the program's graph inputs by name with the batch along axis 0, or JSONL of
// token-id arrays padded to the compiled sequence length.
//
// Batching policy: examples are visited in a per-epoch order (the identity,
// or a seeded Fisher-Yates shuffle); each optimizer step takes the next
// batch_size x gradient_accumulation_steps examples of that order. The last
// partial step of an epoch is DROPPED (as `dataloader_drop_last=True`): every
// step sees a full batch, which static shapes require. The position (epoch,
// index) is saved in checkpoints so a resumed run continues exactly.
#pragma once

#include "peft/Program.h"
#include "peft/runtime.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace peft::rt {

/// One graph input the data must provide: name, dtype, and the shape of one
/// micro-batch (axis 0 is the batch).
struct InputSpec {
  std::string name;
  DType dtype = DType::I64;
  Shape shape;
  /// > 0: values index a table of this many rows (the program's
  /// Arg::indexLimit): token ids must lie in [0, indexLimit).
  int64_t indexLimit = 0;
};

/// How examples become batches; dataConfigFromProgram fills it.
struct DataConfig {
  std::vector<InputSpec> inputs;
  int64_t batchSize = 1;    // rows per micro-batch (the compiled axis 0)
  int64_t microBatches = 1; // gradient_accumulation_steps
  bool shuffle = true;
  uint64_t seed = 42;
  int64_t padTokenId = 0; // spec pad_token_id; 0 when unset (masked anyway)
  int64_t ignoreIndex = -100;
  /// The cross-entropy loss's class-id input ("" when the loss has none):
  /// padded with ignore_index, range-checked against the vocabulary.
  std::string labelsKey = "labels";
  /// Class ids of labelsKey must lie in [0, vocabSize) (or be ignore_index);
  /// 0 when unknown (no range check). `input_ids` is checked against it too
  /// when the program gives it no indexLimit of its own.
  int64_t vocabSize = 0;
};

/// Reads the data contract of `function` (its non-step args, with the dtype
/// and shape of their buffers) and the spec_json `training` section
/// (batch_size, gradient_accumulation_steps, shuffle, seed, pad_token_id,
/// loss.ignore_index, loss.labels, vocab_size). The vocabulary size is
/// training.vocab_size, else the last dimension of a function result named
/// as the loss's logits.
bool dataConfigFromProgram(const program::Program &program,
                           const std::string &function, DataConfig &config,
                           std::string &error);

/// All examples of a data file, validated against a DataConfig. Safetensors
/// tensors stay memory-mapped; JSONL lines are padded into owned tensors:
/// input_ids with the pad id, attention_mask 1 on tokens and 0 on padding,
/// labels (input_ids when absent) with ignore_index.
class Dataset {
public:
  /// `path`: a *.jsonl file, a *.safetensors file, or a folder of
  /// *.safetensors files. Errors name the file and the key or line.
  static std::shared_ptr<const Dataset>
  open(const std::string &path, const DataConfig &config, std::string &error);

  int64_t size() const { return size_; }
  const std::string &path() const { return path_; }
  /// The examples `rows` (in that order) stacked along axis 0.
  Batch gather(const std::vector<int64_t> &rows) const;

private:
  Dataset() = default;
  struct Column {
    InputSpec spec;
    std::vector<Tensor> chunks; // one per file, rows along axis 0
  };
  std::string path_;
  int64_t size_ = 0;
  std::vector<int64_t> chunkStart_; // first row of each chunk
  std::vector<Column> columns_;
};

/// Where the data stream stands: the epoch (from 0) and how many examples of
/// that epoch's order have been consumed.
struct DataPosition {
  int64_t epoch = 0;
  int64_t index = 0;
  bool operator==(const DataPosition &o) const {
    return epoch == o.epoch && index == o.index;
  }
};

/// The seed of epoch `epoch`'s shuffle generator:
/// splitmix64(seed ^ splitmix64(epoch)), so nearby seeds and epochs give
/// unrelated streams.
uint64_t epochSeed(uint64_t seed, int64_t epoch);

/// The visiting order of `n` examples in `epoch`: 0..n-1 without shuffling;
/// otherwise Fisher-Yates (i from n-1 down to 1 swaps i with j uniform in
/// [0, i], drawn from std::mt19937_64(epochSeed(seed, epoch)) by rejection
/// sampling, so the order is the same on every platform). `rngState`, when
/// given, receives the generator's state after the shuffle, which that
/// derivation makes compact: "mt19937_64 seed <s> draws <k>".
std::vector<int64_t> epochOrder(int64_t n, bool shuffle, uint64_t seed,
                                int64_t epoch, std::string *rngState = nullptr);

/// Serves one optimizer step's batch at a time: batchSize x microBatches
/// rows, advancing epochs as needed and dropping each epoch's partial tail.
class DataLoader {
public:
  DataLoader(std::shared_ptr<const Dataset> data, const DataConfig &config);

  int64_t rowsPerStep() const { return rowsPerStep_; }
  /// Full steps per epoch (the partial tail dropped); 0 when the data holds
  /// fewer examples than one step.
  int64_t stepsPerEpoch() const;
  /// The next step's batch; advances the position.
  Batch next();
  DataPosition position() const { return pos_; }
  /// Restores a saved position. Fails when it does not fit this data (an
  /// index past the epoch's last full step, or not on a step boundary).
  bool seek(const DataPosition &pos, std::string &error);
  /// The shuffle generator's state for the current epoch (see epochOrder);
  /// checkpoints store it to detect a changed dataset or seed on resume.
  const std::string &rngState() const { return rngState_; }

private:
  void startEpoch(int64_t epoch);
  std::shared_ptr<const Dataset> data_;
  DataConfig config_;
  int64_t rowsPerStep_;
  DataPosition pos_;
  std::vector<int64_t> order_;
  std::string rngState_;
};

/// Tokens in a batch, for tokens/s: the ones of attention_mask when present,
/// else the elements of input_ids, else the rows of the first input.
int64_t countTokens(const Batch &batch);

} // namespace peft::rt
