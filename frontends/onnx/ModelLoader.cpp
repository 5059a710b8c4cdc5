//===- ModelLoader.cpp - wire-format scan, external refs, text models -----===//
#include "frontends/onnx/ModelLoader.h"

#include "peft/MappedFile.h"

#include "onnx/defs/parser.h"

#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace peft::onnx_import {
namespace {

// Field numbers from onnx.proto.
constexpr uint32_t kModelGraph = 7;
constexpr uint32_t kGraphNode = 1, kGraphInitializer = 5;
constexpr uint32_t kNodeAttribute = 5;
constexpr uint32_t kAttrTensor = 5, kAttrGraph = 6, kAttrTensors = 10,
                   kAttrGraphs = 11;
constexpr uint64_t kTensorExternal = 1; // TensorProto.DataLocation.EXTERNAL
// protobuf refuses deeper messages; the scan stops there too, so a hostile
// file cannot exhaust the stack through nested subgraphs.
constexpr int kMaxGraphDepth = 32;
constexpr uint32_t kTensorFloatData = 4, kTensorRawData = 9,
                   kTensorDoubleData = 10, kTensorExternalData = 13,
                   kTensorDataLocation = 14;

enum WireType { Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5 };

struct WireError {
  std::string message;
};

class Reader {
public:
  Reader(const uint8_t *base, uint64_t begin, uint64_t end)
      : base_(base), pos_(begin), end_(end) {}
  bool done() const { return pos_ >= end_; }
  uint64_t pos() const { return pos_; }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= end_)
        throw WireError{"truncated varint at byte " + std::to_string(pos_)};
      uint8_t b = base_[pos_++];
      v |= (uint64_t)(b & 0x7f) << shift;
      if (!(b & 0x80))
        return v;
    }
    throw WireError{"malformed varint at byte " + std::to_string(pos_)};
  }

  /// Reads a tag and returns the [begin, end) of its payload.
  struct Field {
    uint32_t number;
    WireType type;
    uint64_t begin, end; // payload (for length-delimited: the content)
    uint64_t tagBegin; // start of the tag (the whole field is [tagBegin, end))
  };
  Field next() {
    Field f;
    f.tagBegin = pos_;
    uint64_t tag = varint();
    f.number = (uint32_t)(tag >> 3);
    f.type = (WireType)(tag & 7);
    if (f.number == 0)
      throw WireError{"field number 0 at byte " + std::to_string(f.tagBegin)};
    switch (f.type) {
    case Varint:
      f.begin = pos_;
      varint();
      f.end = pos_;
      break;
    case Fixed64:
      f.begin = pos_;
      skip(8);
      f.end = pos_;
      break;
    case Fixed32:
      f.begin = pos_;
      skip(4);
      f.end = pos_;
      break;
    case LengthDelimited: {
      uint64_t len = varint();
      f.begin = pos_;
      skip(len);
      f.end = pos_;
      break;
    }
    default:
      throw WireError{"unsupported wire type " + std::to_string((int)f.type) +
                      " at byte " + std::to_string(f.tagBegin)};
    }
    return f;
  }

private:
  void skip(uint64_t n) {
    if (n > end_ - pos_)
      throw WireError{"a field at byte " + std::to_string(pos_) + " claims " +
                      std::to_string(n) + " bytes but only " +
                      std::to_string(end_ - pos_) + " remain"};
    pos_ += n;
  }
  const uint8_t *base_;
  uint64_t pos_, end_;
};

void putVarint(std::string &out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back((char)(v | 0x80));
    v >>= 7;
  }
  out.push_back((char)v);
}
void putTag(std::string &out, uint32_t number, WireType type) {
  putVarint(out, ((uint64_t)number << 3) | type);
}
void putBytes(std::string &out, uint32_t number, const std::string &bytes) {
  putTag(out, number, LengthDelimited);
  putVarint(out, bytes.size());
  out += bytes;
}

/// Rewrites messages so large tensor payloads become external references.
class Stripper {
public:
  explicit Stripper(const uint8_t *base) : base_(base) {}

  std::string model(uint64_t begin, uint64_t end) {
    return rewrite(begin, end, [&](const Reader::Field &f, std::string &out) {
      if (f.number == kModelGraph && f.type == LengthDelimited) {
        putBytes(out, f.number, graph(f.begin, f.end));
        return true;
      }
      return false;
    });
  }

private:
  template <typename Fn>
  std::string rewrite(uint64_t begin, uint64_t end, Fn fn) {
    std::string out;
    Reader r(base_, begin, end);
    while (!r.done()) {
      Reader::Field f = r.next();
      if (!fn(f, out))
        out.append(reinterpret_cast<const char *>(base_ + f.tagBegin),
                   f.end - f.tagBegin);
    }
    return out;
  }

  std::string graph(uint64_t begin, uint64_t end) {
    if (++depth_ > kMaxGraphDepth)
      throw WireError{"subgraphs nested deeper than " +
                      std::to_string(kMaxGraphDepth) + " levels"};
    std::string out =
        rewrite(begin, end, [&](const Reader::Field &f, std::string &out) {
          if (f.type != LengthDelimited)
            return false;
          if (f.number == kGraphInitializer) {
            putBytes(out, f.number, tensor(f.begin, f.end));
            return true;
          }
          if (f.number == kGraphNode) {
            putBytes(out, f.number, node(f.begin, f.end));
            return true;
          }
          return false;
        });
    --depth_;
    return out;
  }

  std::string node(uint64_t begin, uint64_t end) {
    return rewrite(begin, end, [&](const Reader::Field &f, std::string &out) {
      if (f.number == kNodeAttribute && f.type == LengthDelimited) {
        putBytes(out, f.number, attribute(f.begin, f.end));
        return true;
      }
      return false;
    });
  }

  std::string attribute(uint64_t begin, uint64_t end) {
    return rewrite(begin, end, [&](const Reader::Field &f, std::string &out) {
      if (f.type != LengthDelimited)
        return false;
      if (f.number == kAttrTensor || f.number == kAttrTensors) {
        putBytes(out, f.number, tensor(f.begin, f.end));
        return true;
      }
      // If/Loop/Scan bodies hold initializers and Constant nodes too.
      if (f.number == kAttrGraph || f.number == kAttrGraphs) {
        putBytes(out, f.number, graph(f.begin, f.end));
        return true;
      }
      return false;
    });
  }

  std::string tensor(uint64_t begin, uint64_t end) {
    uint64_t payloadBegin = 0, payloadLen = 0;
    bool external = false;
    std::string out =
        rewrite(begin, end, [&](const Reader::Field &f, std::string &) {
          if (f.number == kTensorDataLocation && f.type == Varint)
            external =
                Reader(base_, f.begin, f.end).varint() == kTensorExternal;
          bool payload =
              f.type == LengthDelimited &&
              (f.number == kTensorRawData || f.number == kTensorFloatData ||
               f.number == kTensorDoubleData);
          if (payload && f.end - f.begin >= kExternalizeThreshold &&
              payloadLen == 0) {
            payloadBegin = f.begin;
            payloadLen = f.end - f.begin;
            return true; // dropped: referenced below
          }
          return false;
        });
    if (payloadLen && !external) {
      auto entry = [&](const std::string &key, const std::string &value) {
        std::string e;
        putBytes(e, 1, key);
        putBytes(e, 2, value);
        putBytes(out, kTensorExternalData, e);
      };
      entry("location", kSelfLocation);
      entry("offset", std::to_string(payloadBegin));
      entry("length", std::to_string(payloadLen));
      putTag(out, kTensorDataLocation, Varint);
      putVarint(out, 1); // TensorProto.EXTERNAL
    }
    return out;
  }

  const uint8_t *base_;
  int depth_ = 0;
};

std::string absolutePath(const std::string &path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf))
    return buf;
  return path;
}

std::string parentDir(const std::string &path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

} // namespace

std::shared_ptr<MappedFile> LoadedModel::map(const std::string &file,
                                             std::string &error) const {
  auto it = mapped_.find(file);
  if (it != mapped_.end())
    return it->second;
  auto mapped = MappedFile::open(file, error);
  if (mapped)
    mapped_.emplace(file, mapped);
  return mapped;
}

bool loadModel(const std::string &path, LoadedModel &out, std::string &error) {
  out.path = absolutePath(path);
  out.directory = parentDir(out.path);
  if (endsWith(path, ".onnxtext") || endsWith(path, ".onnxtxt")) {
    std::ifstream in(path);
    if (!in) {
      error = "cannot open '" + path + "'";
      return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    out.fileSize = text.size();
    try {
      onnx::OnnxParser parser(text.c_str());
      auto status = parser.Parse(out.proto);
      if (!status.IsOK()) {
        error = path + ": cannot parse ONNX text: " + status.ErrorMessage();
        return false;
      }
      if (!parser.EndOfInput()) {
        error = path + ": unexpected text after the model";
        return false;
      }
    } catch (const std::exception &e) {
      // libonnx's parser throws on some malformed literals.
      error = path + ": cannot parse ONNX text: " + e.what();
      return false;
    }
    return true;
  }

  std::string mapError;
  auto file = MappedFile::open(path, mapError);
  if (!file) {
    error = mapError;
    return false;
  }
  out.fileSize = file->size();
  if (file->size() == 0) {
    error = path + ": the file is empty, not an ONNX model";
    return false;
  }
  std::string stripped;
  try {
    stripped = Stripper(file->data()).model(0, file->size());
  } catch (const WireError &e) {
    error = path + ": not a valid ONNX model (truncated or corrupt protobuf: " +
            e.message + ")";
    return false;
  }
  if (stripped.size() > (size_t)INT_MAX) {
    error = path + ": the model's protobuf is " +
            std::to_string(stripped.size()) +
            " bytes even without its tensor data, over protobuf's 2 GB "
            "limit; save it with external data (onnx.save_model(..., "
            "save_as_external_data=True))";
    return false;
  }
  if (!out.proto.ParseFromString(stripped)) {
    error = path +
            ": not a valid ONNX model (protobuf could not parse a ModelProto)";
    return false;
  }
  if (!out.proto.has_graph() || out.proto.ir_version() <= 0) {
    error = path + ": not an ONNX model (no " +
            std::string(out.proto.has_graph() ? "ir_version" : "graph") +
            " in the ModelProto)";
    return false;
  }
  return true;
}

} // namespace peft::onnx_import
