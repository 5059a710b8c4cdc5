#include "peft/Data.h"

#include "Json.h"
#include "peft/SafeTensors.h"

#include <algorithm>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <random>
#include <sys/stat.h>

namespace peft::rt {
namespace {

std::string quoted(const std::string &s) { return "\"" + s + "\""; }

/// "Nx8x16": the shape the data must have, N being any number of examples.
std::string rowShape(const Shape &shape) {
  std::string s = "N";
  for (size_t i = 1; i < shape.size(); ++i)
    s += "x" + std::to_string(shape[i]);
  return s;
}

int64_t rowElements(const Shape &shape) {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i)
    n *= shape[i];
  return n;
}

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool isDirectory(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// Size of a regular file, or -1 with `error` set.
int64_t fileSize(const std::string &path, std::string &error) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    error = path + ": cannot open: " + std::strerror(errno);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + ": not a regular file";
    return -1;
  }
  return (int64_t)st.st_size;
}

bool isIntegerDType(DType t) { return !isFloat(t) && t != DType::Bool; }

/// Checks the token ids of `t` (rows of a data file) against the vocabulary;
/// labels may also hold ignore_index.
bool checkTokenRange(const Tensor &t, const std::string &where,
                     const std::string &key, int64_t vocab, bool isLabels,
                     int64_t ignoreIndex, std::string &error) {
  if (vocab <= 0 || !isIntegerDType(t.dtype()))
    return true;
  int64_t perRow = rowElements(t.shape());
  int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    int64_t v = t.getInt(i);
    if (v >= 0 && v < vocab)
      continue;
    if (isLabels && v == ignoreIndex)
      continue;
    error =
        where + ": key " + quoted(key) + " row " +
        std::to_string(perRow ? i / perRow : 0) + " position " +
        std::to_string(perRow ? i % perRow : 0) + ": token id " +
        std::to_string(v) + " is outside the vocabulary [0, " +
        std::to_string(vocab) + ")" +
        (isLabels ? " and is not ignore_index " + std::to_string(ignoreIndex)
                  : "");
    return false;
  }
  return true;
}

/// The exclusive upper bound of an input's ids (0: unchecked): the labels'
/// class count, else the table the program says the input indexes, else
/// the vocabulary for `input_ids` of programs that do not say.
int64_t idLimit(const DataConfig &config, const InputSpec &input,
                bool isLabels) {
  if (isLabels)
    return config.vocabSize;
  if (input.indexLimit > 0)
    return input.indexLimit;
  return input.name == "input_ids" ? config.vocabSize : 0;
}

/// The *.safetensors files of a folder, in name order.
bool listSafetensors(const std::string &dir, std::vector<std::string> &files,
                     std::string &error) {
  DIR *d = ::opendir(dir.c_str());
  if (!d) {
    error = dir + ": cannot open folder: " + std::strerror(errno);
    return false;
  }
  while (struct dirent *e = ::readdir(d)) {
    std::string name = e->d_name;
    if (endsWith(name, ".safetensors"))
      files.push_back(dir + "/" + name);
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    error = dir + ": the folder holds no *.safetensors files";
    return false;
  }
  return true;
}

std::string inputList(const DataConfig &config) {
  std::string s;
  for (const InputSpec &in : config.inputs)
    s += (s.empty() ? "" : ", ") + in.name;
  return s;
}

} // namespace

//===----------------------------------------------------------------------===//
// Program contract
//===----------------------------------------------------------------------===//

bool dataConfigFromProgram(const program::Program &program,
                           const std::string &function, DataConfig &config,
                           std::string &error) {
  const program::Function *fn = program.function(function);
  if (!fn) {
    error = "the program has no function '" + function + "'";
    return false;
  }
  DataConfig c;
  for (const program::Arg &arg : fn->args) {
    if (arg.isStep)
      continue;
    if (arg.buffer >= program.buffers.size()) {
      error = "function '" + function + "': argument '" + arg.name +
              "' refers to buffer " + std::to_string(arg.buffer) +
              ", past the program's " + std::to_string(program.buffers.size());
      return false;
    }
    const program::Buffer &b = program.buffers[arg.buffer];
    if (b.shape.empty() || b.shape[0] <= 0) {
      error = "function '" + function + "': input '" + arg.name +
              "' has shape " + shapeToString(b.shape) +
              ": data inputs need a batch along axis 0";
      return false;
    }
    if (!c.inputs.empty() && b.shape[0] != c.inputs[0].shape[0]) {
      error = "function '" + function + "': inputs '" + c.inputs[0].name +
              "' and '" + arg.name + "' disagree on the batch size (" +
              std::to_string(c.inputs[0].shape[0]) + " and " +
              std::to_string(b.shape[0]) + ")";
      return false;
    }
    c.inputs.push_back({arg.name, b.dtype, b.shape, arg.indexLimit});
  }
  if (c.inputs.empty()) {
    error = "function '" + function + "' takes no data inputs";
    return false;
  }
  c.batchSize = c.inputs[0].shape[0];

  std::string logitsName = "logits";
  if (!program.specJson.empty()) {
    json::Value spec;
    std::string jsonError;
    if (!json::parse(program.specJson, spec, jsonError)) {
      error = "the program's spec_json is not valid JSON: " + jsonError;
      return false;
    }
    const json::Value *training = spec.get("training");
    auto intField = [&](const json::Value *obj, const char *key,
                        int64_t &out) -> bool {
      const json::Value *v = obj ? obj->get(key) : nullptr;
      if (!v || v->isNull())
        return true;
      if (!v->isInt()) {
        error = std::string("the program's spec_json: training.") + key +
                " is not an integer";
        return false;
      }
      out = v->integer;
      return true;
    };
    int64_t accum = c.microBatches, seed = (int64_t)c.seed;
    if (!intField(training, "gradient_accumulation_steps", accum) ||
        !intField(training, "seed", seed) ||
        !intField(training, "pad_token_id", c.padTokenId) ||
        !intField(training, "vocab_size", c.vocabSize))
      return false;
    if (accum < 1) {
      error = "the program's spec_json: training.gradient_accumulation_steps "
              "must be at least 1";
      return false;
    }
    c.microBatches = accum;
    c.seed = (uint64_t)seed;
    if (const json::Value *s = training ? training->get("shuffle") : nullptr)
      if (s->kind == json::Value::Kind::Bool)
        c.shuffle = s->boolean;
    if (const json::Value *loss = training ? training->get("loss") : nullptr) {
      if (!intField(loss, "ignore_index", c.ignoreIndex))
        return false;
      const json::Value *type = loss->get("type");
      bool crossEntropy = type && type->kind == json::Value::Kind::String &&
                          type->string == "cross_entropy";
      const json::Value *labels = loss->get("labels");
      c.labelsKey =
          crossEntropy && labels && labels->kind == json::Value::Kind::String
              ? labels->string
              : "";
      if (const json::Value *l = loss->get("logits"))
        if (l->kind == json::Value::Kind::String)
          logitsName = l->string;
    }
  }
  if (c.vocabSize <= 0) {
    // The classifier's width is the vocabulary of a language model.
    c.vocabSize = 0;
    for (const program::Function &f : program.functions)
      for (const program::Result &r : f.results)
        if (r.name == logitsName && r.buffer < program.buffers.size() &&
            !program.buffers[r.buffer].shape.empty())
          c.vocabSize = program.buffers[r.buffer].shape.back();
  }
  config = std::move(c);
  return true;
}

//===----------------------------------------------------------------------===//
// Dataset
//===----------------------------------------------------------------------===//

namespace {

/// Reads the examples of a JSONL file into one owned tensor per input.
bool readJsonl(const std::string &path, const DataConfig &config,
               std::vector<Tensor> &columns, int64_t &rows,
               std::string &error) {
  int64_t size = fileSize(path, error);
  if (size < 0)
    return false;
  if (size == 0) {
    error = path + ": the file is empty";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  // Values per input, row-major, already padded.
  std::vector<std::vector<int64_t>> ints(config.inputs.size());
  std::vector<std::vector<double>> floats(config.inputs.size());
  for (const InputSpec &input : config.inputs)
    if (input.shape.size() > 2) {
      error = path + ": JSONL holds sequences, but input " +
              quoted(input.name) + " has shape " + shapeToString(input.shape) +
              "; give this program safetensors data";
      return false;
    }
  bool needsTokens = false;
  for (const InputSpec &input : config.inputs)
    needsTokens |= input.name == "input_ids";
  std::string line;
  int64_t lineNo = 0;
  rows = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos)
      continue;
    const std::string where = path + ":" + std::to_string(lineNo);
    json::Value v;
    std::string jsonError;
    if (!json::parse(line, v, jsonError)) {
      error = where + ": invalid JSON: " + jsonError;
      return false;
    }
    // The token sequence: a bare array, or the object's "input_ids"
    // (required when the program takes input_ids).
    const json::Value *tokens = nullptr;
    if (v.kind == json::Value::Kind::Array) {
      tokens = &v;
    } else if (v.kind == json::Value::Kind::Object) {
      tokens = v.get("input_ids");
      if (!tokens && needsTokens) {
        error = where + ": missing key \"input_ids\"";
        return false;
      }
    } else {
      error = where + ": expected an array of token ids or an object";
      return false;
    }
    if (tokens && tokens->kind != json::Value::Kind::Array) {
      error = where + ": \"input_ids\" is not an array";
      return false;
    }
    if (tokens && tokens->array.empty()) {
      error = where + ": \"input_ids\" is empty";
      return false;
    }
    size_t numTokens = tokens ? tokens->array.size() : 0;
    for (size_t k = 0; k < config.inputs.size(); ++k) {
      const InputSpec &input = config.inputs[k];
      const std::string &name = input.name;
      bool isFloatInput = isFloat(input.dtype);
      const json::Value *field =
          name == "input_ids"
              ? tokens
              : (v.kind == json::Value::Kind::Object ? v.get(name) : nullptr);
      bool isLabels = !config.labelsKey.empty() && name == config.labelsKey;
      int64_t limit = idLimit(config, input, isLabels);
      if (input.shape.size() == 1) {
        // One number per example (e.g. a prompt length).
        if (!field || !field->isNumber() ||
            (!isFloatInput && !field->isInt())) {
          error = where + ": " +
                  (field ? "key " + quoted(name) + " is not a single " +
                               (isFloatInput ? "number" : "integer")
                         : "missing key " + quoted(name));
          return false;
        }
        int64_t id = field->integer;
        if (!isFloatInput && limit > 0 && (id < 0 || id >= limit) &&
            !(isLabels && id == config.ignoreIndex)) {
          error = where + ": " + quoted(name) + ": " +
                  (isLabels ? "class id " : "id ") + std::to_string(id) +
                  " is outside [0, " + std::to_string(limit) + ")";
          return false;
        }
        ints[k].push_back(id);
        floats[k].push_back(field->number);
        continue;
      }
      int64_t length = input.shape[1];
      std::vector<int64_t> rowInts((size_t)length);
      std::vector<double> rowFloats((size_t)length);
      size_t given = 0;
      if (field) {
        if (field->kind != json::Value::Kind::Array) {
          error = where + ": key " + quoted(name) + " is not an array";
          return false;
        }
        given = field->array.size();
        if ((int64_t)given > length) {
          error = where + ": " + quoted(name) + " has " +
                  std::to_string(given) +
                  " tokens, more than the compiled sequence length " +
                  std::to_string(length);
          return false;
        }
        for (size_t i = 0; i < given; ++i) {
          const json::Value &e = field->array[i];
          if (isFloatInput ? !e.isNumber() : !e.isInt()) {
            error = where + ": " + quoted(name) + "[" + std::to_string(i) +
                    "] is not " + (isFloatInput ? "a number" : "an integer");
            return false;
          }
          int64_t id = e.integer;
          if (!isFloatInput && limit > 0 && (id < 0 || id >= limit) &&
              !(isLabels && id == config.ignoreIndex)) {
            error = where + ": " + quoted(name) + "[" + std::to_string(i) +
                    "]: token id " + std::to_string(id) +
                    " is outside the vocabulary [0, " + std::to_string(limit) +
                    ")";
            return false;
          }
          rowInts[i] = id;
          rowFloats[i] = e.number;
        }
      } else if (name == "attention_mask" && tokens) {
        given = numTokens;
        std::fill(rowInts.begin(), rowInts.begin() + (long)given, 1);
        std::fill(rowFloats.begin(), rowFloats.begin() + (long)given, 1.0);
      } else if (isLabels && tokens) {
        // Causal LM: the labels are the inputs (the loss shifts them).
        given = numTokens;
        for (size_t i = 0; i < given; ++i) {
          rowInts[i] = tokens->array[i].integer;
          rowFloats[i] = tokens->array[i].number;
        }
      } else {
        error = where + ": missing key " + quoted(name) +
                " (the program needs " + inputList(config) + ")";
        return false;
      }
      int64_t pad = name == "input_ids" ? config.padTokenId
                    : isLabels          ? config.ignoreIndex
                                        : 0;
      for (int64_t i = (int64_t)given; i < length; ++i) {
        rowInts[(size_t)i] = pad;
        rowFloats[(size_t)i] = (double)pad;
      }
      ints[k].insert(ints[k].end(), rowInts.begin(), rowInts.end());
      floats[k].insert(floats[k].end(), rowFloats.begin(), rowFloats.end());
    }
    ++rows;
  }
  if (in.bad()) {
    error = path + ": read error: " + std::strerror(errno);
    return false;
  }
  if (rows == 0) {
    error = path + ": the file holds no examples (only blank lines)";
    return false;
  }
  columns.clear();
  for (size_t k = 0; k < config.inputs.size(); ++k) {
    const InputSpec &input = config.inputs[k];
    Shape shape = input.shape;
    shape[0] = rows;
    Tensor t(input.dtype, shape);
    int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) {
      if (isFloat(input.dtype))
        t.setDouble(i, floats[k][(size_t)i]);
      else
        t.setInt(i, ints[k][(size_t)i]);
    }
    columns.push_back(std::move(t));
  }
  return true;
}

/// Validates one safetensors file against the inputs; `columns` receives a
/// view per input.
bool readSafetensorsData(const std::string &path, const DataConfig &config,
                         std::vector<Tensor> &columns, int64_t &rows,
                         std::string &error) {
  int64_t size = fileSize(path, error);
  if (size < 0)
    return false;
  if (size == 0) {
    error = path + ": the file is empty";
    return false;
  }
  SafeTensorsFile file;
  if (!readSafeTensors(path, file, error))
    return false;
  columns.clear();
  std::string firstKey;
  for (const InputSpec &input : config.inputs) {
    const Tensor *t = file.find(input.name);
    if (!t) {
      error = path + ": missing key " + quoted(input.name) +
              " (the program needs " + inputList(config) + ")";
      return false;
    }
    if (t->dtype() != input.dtype) {
      error = path + ": key " + quoted(input.name) + " is " +
              std::string(dtypeName(t->dtype())) + " but the program needs " +
              std::string(dtypeName(input.dtype));
      return false;
    }
    bool shapeOk = t->rank() == (int64_t)input.shape.size();
    for (size_t i = 1; shapeOk && i < input.shape.size(); ++i)
      shapeOk = t->shape()[i] == input.shape[i];
    if (!shapeOk) {
      error = path + ": key " + quoted(input.name) + " has shape " +
              shapeToString(t->shape()) + " but the program needs " +
              rowShape(input.shape) + " (N examples along axis 0)";
      return false;
    }
    if (columns.empty()) {
      rows = t->shape()[0];
      firstKey = input.name;
    } else if (t->shape()[0] != rows) {
      error = path + ": key " + quoted(input.name) + " has " +
              std::to_string(t->shape()[0]) + " examples but " +
              quoted(firstKey) + " has " + std::to_string(rows);
      return false;
    }
    bool isLabels = !config.labelsKey.empty() && input.name == config.labelsKey;
    if (!checkTokenRange(*t, path, input.name, idLimit(config, input, isLabels),
                         isLabels, config.ignoreIndex, error))
      return false;
    columns.push_back(*t);
  }
  return true;
}

} // namespace

std::shared_ptr<const Dataset> Dataset::open(const std::string &path,
                                             const DataConfig &config,
                                             std::string &error) {
  if (config.inputs.empty()) {
    error = "no data inputs to read from " + path;
    return nullptr;
  }
  std::shared_ptr<Dataset> data(new Dataset());
  data->path_ = path;
  for (const InputSpec &input : config.inputs)
    data->columns_.push_back({input, {}});
  auto addChunk = [&](std::vector<Tensor> &columns, int64_t rows) {
    if (rows == 0)
      return;
    data->chunkStart_.push_back(data->size_);
    data->size_ += rows;
    for (size_t k = 0; k < columns.size(); ++k)
      data->columns_[k].chunks.push_back(std::move(columns[k]));
  };
  std::vector<Tensor> columns;
  int64_t rows = 0;
  if (endsWith(path, ".jsonl") || endsWith(path, ".json")) {
    if (!readJsonl(path, config, columns, rows, error))
      return nullptr;
    addChunk(columns, rows);
  } else {
    std::vector<std::string> files;
    if (isDirectory(path)) {
      if (!listSafetensors(path, files, error))
        return nullptr;
    } else {
      files.push_back(path);
    }
    for (const std::string &file : files) {
      if (!readSafetensorsData(file, config, columns, rows, error))
        return nullptr;
      addChunk(columns, rows);
    }
  }
  if (data->size_ == 0) {
    error = path + ": holds no examples (every input has 0 rows)";
    return nullptr;
  }
  return data;
}

Batch Dataset::gather(const std::vector<int64_t> &rows) const {
  Batch batch;
  for (const Column &column : columns_) {
    Shape shape = column.spec.shape;
    shape[0] = (int64_t)rows.size();
    Tensor out(column.spec.dtype, shape);
    size_t rowBytes =
        (size_t)rowElements(column.spec.shape) * dtypeSize(column.spec.dtype);
    uint8_t *dst = out.mutableBytes();
    for (size_t i = 0; i < rows.size(); ++i) {
      size_t chunk = (size_t)(std::upper_bound(chunkStart_.begin(),
                                               chunkStart_.end(), rows[i]) -
                              chunkStart_.begin() - 1);
      const uint8_t *src = column.chunks[chunk].bytes() +
                           (size_t)(rows[i] - chunkStart_[chunk]) * rowBytes;
      if (rowBytes)
        std::memcpy(dst + i * rowBytes, src, rowBytes);
    }
    batch.emplace(column.spec.name, std::move(out));
  }
  return batch;
}

//===----------------------------------------------------------------------===//
// Order and loader
//===----------------------------------------------------------------------===//

namespace {
uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
} // namespace

uint64_t epochSeed(uint64_t seed, int64_t epoch) {
  return splitmix64(seed ^ splitmix64((uint64_t)epoch));
}

std::vector<int64_t> epochOrder(int64_t n, bool shuffle, uint64_t seed,
                                int64_t epoch, std::string *rngState) {
  std::vector<int64_t> order((size_t)std::max<int64_t>(n, 0));
  for (int64_t i = 0; i < n; ++i)
    order[(size_t)i] = i;
  uint64_t rngSeed = epochSeed(seed, epoch);
  std::mt19937_64 rng(rngSeed);
  uint64_t draws = 0;
  if (shuffle) {
    for (int64_t i = n - 1; i > 0; --i) {
      // Uniform in [0, i] without modulo bias: reject the lowest
      // 2^64 mod (i+1) draws.
      uint64_t bound = (uint64_t)i + 1;
      uint64_t threshold = (0 - bound) % bound;
      uint64_t r;
      do {
        r = rng();
        ++draws;
      } while (r < threshold);
      std::swap(order[(size_t)i], order[(size_t)(r % bound)]);
    }
  }
  if (rngState)
    *rngState = "mt19937_64 seed " + std::to_string(rngSeed) + " draws " +
                std::to_string(draws);
  return order;
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> data,
                       const DataConfig &config)
    : data_(std::move(data)), config_(config),
      rowsPerStep_(config.batchSize * config.microBatches) {
  startEpoch(0);
}

int64_t DataLoader::stepsPerEpoch() const {
  return rowsPerStep_ > 0 ? data_->size() / rowsPerStep_ : 0;
}

void DataLoader::startEpoch(int64_t epoch) {
  order_ = epochOrder(data_->size(), config_.shuffle, config_.seed, epoch,
                      &rngState_);
  pos_ = {epoch, 0};
}

Batch DataLoader::next() {
  if (pos_.index + rowsPerStep_ > data_->size())
    startEpoch(pos_.epoch + 1);
  std::vector<int64_t> rows(order_.begin() + pos_.index,
                            order_.begin() + pos_.index + rowsPerStep_);
  pos_.index += rowsPerStep_;
  return data_->gather(rows);
}

bool DataLoader::seek(const DataPosition &pos, std::string &error) {
  int64_t limit = stepsPerEpoch() * rowsPerStep_;
  if (pos.epoch < 0 || pos.index < 0 || pos.index > limit ||
      pos.index % rowsPerStep_ != 0) {
    error = "data position (epoch " + std::to_string(pos.epoch) + ", example " +
            std::to_string(pos.index) + ") does not fit " + data_->path() +
            " (" + std::to_string(data_->size()) + " examples, " +
            std::to_string(rowsPerStep_) + " per step)";
    return false;
  }
  startEpoch(pos.epoch);
  pos_ = pos;
  return true;
}

int64_t countTokens(const Batch &batch) {
  auto mask = batch.find("attention_mask");
  if (mask != batch.end()) {
    int64_t n = 0, count = mask->second.numel();
    for (int64_t i = 0; i < count; ++i)
      n += mask->second.getDouble(i) != 0.0;
    return n;
  }
  auto ids = batch.find("input_ids");
  if (ids != batch.end())
    return ids->second.numel();
  return batch.empty() || batch.begin()->second.rank() == 0
             ? 0
             : batch.begin()->second.shape()[0];
}

} // namespace peft::rt
