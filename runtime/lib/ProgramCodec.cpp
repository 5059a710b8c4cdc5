// Protobuf wire format of runtime/proto/program.proto, written by hand so the
// runtime needs no libprotobuf. The encoder writes what proto3's serializer
// writes (fields in number order, defaults omitted, repeated scalars packed,
// doubles as fixed64); the decoder accepts everything a conforming parser
// accepts (any field order, packed or unpacked repeated scalars, unknown
// fields skipped, the last value of a repeated scalar field winning) and then
// validates the program against what the executor relies on. A unit test
// checks both directions against libprotobuf.
#include "peft/Program.h"

#include <cstring>
#include <limits>
#include <map>
#include <tuple>
#include <type_traits>

namespace peft::program {

const Function *Program::function(const std::string &name) const {
  for (const Function &f : functions)
    if (f.name == name)
      return &f;
  return nullptr;
}

namespace {

//===----------------------------------------------------------------------===//
// Encoder
//===----------------------------------------------------------------------===//

enum WireType : uint32_t { Varint = 0, Fixed64 = 1, Bytes = 2, Fixed32 = 5 };

class Writer {
public:
  std::string out;

  void varint(uint64_t v) {
    while (v >= 0x80) {
      out.push_back((char)(uint8_t)(v | 0x80));
      v >>= 7;
    }
    out.push_back((char)(uint8_t)v);
  }
  void tag(uint32_t field, WireType type) {
    varint((uint64_t)field << 3 | type);
  }
  /// proto3 omits a scalar equal to its default (0, false, "", empty).
  void u64(uint32_t field, uint64_t v) {
    if (v) {
      tag(field, Varint);
      varint(v);
    }
  }
  // int64 and enums go out as the two's complement bit pattern (10 bytes
  // when negative), as protobuf does.
  void i64(uint32_t field, int64_t v) { u64(field, (uint64_t)v); }
  void boolean(uint32_t field, bool v) { u64(field, v ? 1 : 0); }
  void f64(uint32_t field, double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    // proto3 compares the bit pattern, so -0.0 is written.
    if (!bits)
      return;
    tag(field, Fixed64);
    for (int i = 0; i < 8; ++i)
      out.push_back((char)(uint8_t)(bits >> (8 * i)));
  }
  void bytes(uint32_t field, const std::string &s) {
    if (s.empty())
      return;
    tag(field, Bytes);
    varint(s.size());
    out += s;
  }
  /// A message field is written even when empty (it is present).
  void message(uint32_t field, const std::string &encoded) {
    tag(field, Bytes);
    varint(encoded.size());
    out += encoded;
  }
  template <typename T>
  void packed(uint32_t field, const std::vector<T> &values) {
    if (values.empty())
      return;
    Writer body;
    for (T v : values)
      body.varint((uint64_t)(int64_t)v);
    message(field, body.out);
  }
};

std::string encode(const Buffer &b) {
  Writer w;
  w.u64(1, (uint64_t)b.kind);
  w.u64(2, (uint64_t)b.dtype);
  w.packed(3, b.shape);
  w.u64(4, b.offset);
  w.u64(5, b.bytes);
  w.u64(6, b.param);
  w.bytes(7, b.constant);
  w.u64(8, b.base);
  w.bytes(9, b.name);
  return w.out;
}

std::string encode(const Param &p) {
  Writer w;
  w.bytes(1, p.name);
  w.u64(2, (uint64_t)p.dtype);
  w.packed(3, p.shape);
  w.boolean(4, p.trainable);
  w.u64(5, (uint64_t)p.init);
  w.bytes(6, p.file);
  w.u64(7, p.fileOffset);
  w.u64(8, p.fileLength);
  w.u64(9, p.dataOffset);
  w.u64(10, p.dataLength);
  w.bytes(11, p.peftKey);
  w.boolean(12, p.keyTransposed);
  w.bytes(13, p.stateOf);
  w.bytes(14, p.stateName);
  return w.out;
}

std::string encode(const Kernel &k) {
  Writer w;
  w.bytes(1, k.symbol);
  w.u64(2, k.numArgs);
  return w.out;
}

std::string encode(const Arg &a) {
  Writer w;
  w.u64(1, a.buffer);
  w.bytes(2, a.name);
  w.boolean(3, a.isStep);
  w.i64(4, a.indexLimit);
  return w.out;
}

std::string encode(const Result &r) {
  Writer w;
  w.u64(1, r.buffer);
  w.bytes(2, r.metric);
  w.bytes(3, r.name);
  w.bytes(4, r.peftKey);
  return w.out;
}

std::string encode(const Launch &l) {
  Writer w;
  w.u64(1, l.kernel);
  w.packed(2, l.args);
  w.i64(3, l.extent);
  return w.out;
}

std::string encode(const Gemm &g) {
  Writer w;
  w.u64(1, g.a);
  w.u64(2, g.b);
  w.u64(3, g.c);
  w.i64(4, g.batch);
  w.i64(5, g.m);
  w.i64(6, g.n);
  w.i64(7, g.k);
  w.boolean(8, g.transA);
  w.boolean(9, g.transB);
  w.f64(10, g.alpha);
  w.f64(11, g.beta);
  w.i64(12, g.strideA);
  w.i64(13, g.strideB);
  w.i64(14, g.strideC);
  w.boolean(15, g.hasBias);
  w.u64(16, g.bias);
  w.u64(17, (uint64_t)g.epilogue);
  w.u64(18, (uint64_t)g.dtype);
  return w.out;
}

std::string encode(const Copy &c) {
  Writer w;
  w.u64(1, c.src);
  w.u64(2, c.dst);
  return w.out;
}

std::string encode(const Step &s) {
  Writer w;
  switch (s.kind) {
  case Step::Kind::Launch:
    w.message(1, encode(s.launch));
    break;
  case Step::Kind::Gemm:
    w.message(2, encode(s.gemm));
    break;
  case Step::Kind::Copy:
    w.message(3, encode(s.copy));
    break;
  }
  return w.out;
}

std::string encode(const Function &f) {
  Writer w;
  w.bytes(1, f.name);
  for (const Arg &a : f.args)
    w.message(2, encode(a));
  for (const Result &r : f.results)
    w.message(3, encode(r));
  for (const Step &s : f.steps)
    w.message(4, encode(s));
  return w.out;
}

//===----------------------------------------------------------------------===//
// Decoder
//===----------------------------------------------------------------------===//

/// One field as read off the wire.
struct Field {
  uint32_t number = 0;
  WireType type = Varint;
  uint64_t value = 0;            // Varint, Fixed64, Fixed32
  const uint8_t *data = nullptr; // Bytes
  size_t size = 0;               // Bytes
};

class Decoder {
public:
  explicit Decoder(std::string &error) : error_(error) {}

  bool fail(const std::string &path, const std::string &message) {
    error_ = "program: " + path + ": " + message;
    return false;
  }

  /// Reads every field of the message in [p, end), calling `onField` for
  /// each; `names[number]` names fields in messages about truncation.
  template <typename OnField>
  bool message(const uint8_t *p, const uint8_t *end, const std::string &path,
               const char *const *names, size_t numNames, OnField onField) {
    auto nameOf = [&](uint32_t number) {
      std::string prefix = path.empty() ? "" : path + ".";
      if (number < numNames && names[number])
        return prefix + names[number];
      return prefix + "field " + std::to_string(number);
    };
    while (p < end) {
      uint64_t key;
      if (!varint(p, end, key))
        return fail(path.empty() ? "message" : path,
                    "truncated field key at byte " +
                        std::to_string(p - begin_));
      uint64_t number = key >> 3;
      if (number == 0 || number > 0x1FFFFFFF)
        return fail(path.empty() ? "message" : path,
                    "invalid field number " + std::to_string(number));
      Field f;
      f.number = (uint32_t)number;
      f.type = (WireType)(key & 7);
      std::string name = nameOf(f.number);
      switch (f.type) {
      case Varint:
        if (!varint(p, end, f.value))
          return fail(name, "truncated varint");
        break;
      case Fixed64:
      case Fixed32: {
        size_t n = f.type == Fixed64 ? 8 : 4;
        if ((size_t)(end - p) < n)
          return fail(name, "truncated: needs " + std::to_string(n) +
                                " bytes, " + std::to_string(end - p) + " left");
        f.value = 0;
        for (size_t i = 0; i < n; ++i)
          f.value |= (uint64_t)p[i] << (8 * i);
        p += n;
        break;
      }
      case Bytes: {
        uint64_t len;
        if (!varint(p, end, len))
          return fail(name, "truncated length");
        if (len > (uint64_t)(end - p))
          return fail(name, "truncated: length " + std::to_string(len) +
                                " but " + std::to_string(end - p) +
                                " bytes left");
        f.data = p;
        f.size = (size_t)len;
        p += len;
        break;
      }
      default:
        return fail(name, "unsupported wire type " +
                              std::to_string((unsigned)f.type));
      }
      if (!onField(f, name))
        return false;
    }
    return true;
  }

  const uint8_t *begin_ = nullptr;

  static bool varint(const uint8_t *&p, const uint8_t *end, uint64_t &out) {
    out = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (p == end)
        return false;
      uint8_t byte = *p++;
      if (shift == 63 && byte > 1)
        return false; // more than 64 bits
      out |= (uint64_t)(byte & 0x7F) << shift;
      if (!(byte & 0x80))
        return true;
    }
    return false;
  }

  // Typed field readers: check the wire type, convert and range-check.
  bool u64(const Field &f, const std::string &name, uint64_t &out) {
    if (f.type != Varint)
      return fail(name, "expected a varint");
    out = f.value;
    return true;
  }
  bool u32(const Field &f, const std::string &name, uint32_t &out) {
    uint64_t v;
    if (!u64(f, name, v))
      return false;
    if (v > std::numeric_limits<uint32_t>::max())
      return fail(name, "value " + std::to_string(v) + " exceeds uint32");
    out = (uint32_t)v;
    return true;
  }
  bool i64(const Field &f, const std::string &name, int64_t &out) {
    uint64_t v;
    if (!u64(f, name, v))
      return false;
    out = (int64_t)v;
    return true;
  }
  bool boolean(const Field &f, const std::string &name, bool &out) {
    uint64_t v;
    if (!u64(f, name, v))
      return false;
    out = v != 0;
    return true;
  }
  /// Enums are int32 on the wire; values outside [0, count) are errors
  /// (this runtime cannot run what it does not know).
  template <typename E>
  bool enumeration(const Field &f, const std::string &name, unsigned count,
                   E &out) {
    uint64_t v;
    if (!u64(f, name, v))
      return false;
    if (v >= count)
      return fail(name, "unknown value " + std::to_string((int64_t)v));
    out = (E)v;
    return true;
  }
  bool f64(const Field &f, const std::string &name, double &out) {
    if (f.type != Fixed64)
      return fail(name, "expected a fixed64 double");
    std::memcpy(&out, &f.value, 8);
    return true;
  }
  bool bytes(const Field &f, const std::string &name, std::string &out) {
    if (f.type != Bytes)
      return fail(name, "expected length-delimited bytes");
    out.assign((const char *)f.data, f.size);
    return true;
  }
  /// Repeated integers: packed (one length-delimited run) or one per field.
  template <typename T>
  bool repeated(const Field &f, const std::string &name, std::vector<T> &out) {
    auto append = [&](uint64_t v) {
      if (std::is_same<T, uint32_t>::value &&
          v > std::numeric_limits<uint32_t>::max())
        return fail(name, "value " + std::to_string(v) + " exceeds uint32");
      out.push_back((T)(int64_t)v);
      return true;
    };
    if (f.type == Varint)
      return append(f.value);
    if (f.type != Bytes)
      return fail(name, "expected packed varints");
    const uint8_t *p = f.data, *end = f.data + f.size;
    while (p < end) {
      uint64_t v;
      if (!varint(p, end, v))
        return fail(name, "truncated packed varint");
      if (!append(v))
        return false;
    }
    return true;
  }

private:
  std::string &error_;
};

std::string indexed(const std::string &name, size_t i) {
  return name + "[" + std::to_string(i) + "]";
}

constexpr unsigned kNumDTypes = 9;

bool decodeBuffer(Decoder &d, const Field &outer, const std::string &path,
                  Buffer &b) {
  static const char *const names[] = {nullptr,  "kind",  "dtype", "shape",
                                      "offset", "bytes", "param", "constant",
                                      "base",   "name"};
  return d.message(outer.data, outer.data + outer.size, path, names, 10,
                   [&](const Field &f, const std::string &n) {
                     switch (f.number) {
                     case 1:
                       return d.enumeration(f, n, 4, b.kind);
                     case 2:
                       return d.enumeration(f, n, kNumDTypes, b.dtype);
                     case 3:
                       return d.repeated(f, n, b.shape);
                     case 4:
                       return d.u64(f, n, b.offset);
                     case 5:
                       return d.u64(f, n, b.bytes);
                     case 6:
                       return d.u32(f, n, b.param);
                     case 7:
                       return d.bytes(f, n, b.constant);
                     case 8:
                       return d.u32(f, n, b.base);
                     case 9:
                       return d.bytes(f, n, b.name);
                     }
                     return true;
                   });
}

bool decodeParam(Decoder &d, const Field &outer, const std::string &path,
                 Param &p) {
  static const char *const names[] = {
      nullptr,       "name",     "dtype",          "shape",       "trainable",
      "init",        "file",     "file_offset",    "file_length", "data_offset",
      "data_length", "peft_key", "key_transposed", "state_of",    "state_name"};
  return d.message(outer.data, outer.data + outer.size, path, names, 15,
                   [&](const Field &f, const std::string &n) {
                     switch (f.number) {
                     case 1:
                       return d.bytes(f, n, p.name);
                     case 2:
                       return d.enumeration(f, n, kNumDTypes, p.dtype);
                     case 3:
                       return d.repeated(f, n, p.shape);
                     case 4:
                       return d.boolean(f, n, p.trainable);
                     case 5:
                       return d.enumeration(f, n, 4, p.init);
                     case 6:
                       return d.bytes(f, n, p.file);
                     case 7:
                       return d.u64(f, n, p.fileOffset);
                     case 8:
                       return d.u64(f, n, p.fileLength);
                     case 9:
                       return d.u64(f, n, p.dataOffset);
                     case 10:
                       return d.u64(f, n, p.dataLength);
                     case 11:
                       return d.bytes(f, n, p.peftKey);
                     case 12:
                       return d.boolean(f, n, p.keyTransposed);
                     case 13:
                       return d.bytes(f, n, p.stateOf);
                     case 14:
                       return d.bytes(f, n, p.stateName);
                     }
                     return true;
                   });
}

bool decodeKernel(Decoder &d, const Field &outer, const std::string &path,
                  Kernel &k) {
  static const char *const names[] = {nullptr, "symbol", "num_args"};
  return d.message(outer.data, outer.data + outer.size, path, names, 3,
                   [&](const Field &f, const std::string &n) {
                     if (f.number == 1)
                       return d.bytes(f, n, k.symbol);
                     if (f.number == 2)
                       return d.u32(f, n, k.numArgs);
                     return true;
                   });
}

bool decodeArg(Decoder &d, const Field &outer, const std::string &path,
               Arg &a) {
  static const char *const names[] = {nullptr, "buffer", "name", "is_step",
                                      "index_limit"};
  return d.message(outer.data, outer.data + outer.size, path, names, 5,
                   [&](const Field &f, const std::string &n) {
                     if (f.number == 1)
                       return d.u32(f, n, a.buffer);
                     if (f.number == 2)
                       return d.bytes(f, n, a.name);
                     if (f.number == 3)
                       return d.boolean(f, n, a.isStep);
                     if (f.number == 4)
                       return d.i64(f, n, a.indexLimit);
                     return true;
                   });
}

bool decodeResult(Decoder &d, const Field &outer, const std::string &path,
                  Result &r) {
  static const char *const names[] = {nullptr, "buffer", "metric", "name",
                                      "peft_key"};
  return d.message(outer.data, outer.data + outer.size, path, names, 5,
                   [&](const Field &f, const std::string &n) {
                     if (f.number == 1)
                       return d.u32(f, n, r.buffer);
                     if (f.number == 2)
                       return d.bytes(f, n, r.metric);
                     if (f.number == 3)
                       return d.bytes(f, n, r.name);
                     if (f.number == 4)
                       return d.bytes(f, n, r.peftKey);
                     return true;
                   });
}

bool decodeLaunch(Decoder &d, const Field &outer, const std::string &path,
                  Launch &l) {
  static const char *const names[] = {nullptr, "kernel", "args", "extent"};
  return d.message(outer.data, outer.data + outer.size, path, names, 4,
                   [&](const Field &f, const std::string &n) {
                     if (f.number == 1)
                       return d.u32(f, n, l.kernel);
                     if (f.number == 2)
                       return d.repeated(f, n, l.args);
                     if (f.number == 3)
                       return d.i64(f, n, l.extent);
                     return true;
                   });
}

bool decodeGemm(Decoder &d, const Field &outer, const std::string &path,
                Gemm &g) {
  static const char *const names[] = {
      nullptr,    "a",    "b",        "c",        "batch",
      "m",        "n",    "k",        "trans_a",  "trans_b",
      "alpha",    "beta", "stride_a", "stride_b", "stride_c",
      "has_bias", "bias", "epilogue", "dtype"};
  return d.message(outer.data, outer.data + outer.size, path, names, 19,
                   [&](const Field &f, const std::string &n) {
                     switch (f.number) {
                     case 1:
                       return d.u32(f, n, g.a);
                     case 2:
                       return d.u32(f, n, g.b);
                     case 3:
                       return d.u32(f, n, g.c);
                     case 4:
                       return d.i64(f, n, g.batch);
                     case 5:
                       return d.i64(f, n, g.m);
                     case 6:
                       return d.i64(f, n, g.n);
                     case 7:
                       return d.i64(f, n, g.k);
                     case 8:
                       return d.boolean(f, n, g.transA);
                     case 9:
                       return d.boolean(f, n, g.transB);
                     case 10:
                       return d.f64(f, n, g.alpha);
                     case 11:
                       return d.f64(f, n, g.beta);
                     case 12:
                       return d.i64(f, n, g.strideA);
                     case 13:
                       return d.i64(f, n, g.strideB);
                     case 14:
                       return d.i64(f, n, g.strideC);
                     case 15:
                       return d.boolean(f, n, g.hasBias);
                     case 16:
                       return d.u32(f, n, g.bias);
                     case 17:
                       return d.enumeration(f, n, 4, g.epilogue);
                     case 18:
                       return d.enumeration(f, n, kNumDTypes, g.dtype);
                     }
                     return true;
                   });
}

bool decodeCopy(Decoder &d, const Field &outer, const std::string &path,
                Copy &c) {
  static const char *const names[] = {nullptr, "src", "dst"};
  return d.message(outer.data, outer.data + outer.size, path, names, 3,
                   [&](const Field &f, const std::string &n) {
                     if (f.number == 1)
                       return d.u32(f, n, c.src);
                     if (f.number == 2)
                       return d.u32(f, n, c.dst);
                     return true;
                   });
}

bool decodeStep(Decoder &d, const Field &outer, const std::string &path,
                Step &s) {
  static const char *const names[] = {nullptr, "launch", "gemm", "copy"};
  bool any = false;
  bool ok = d.message(outer.data, outer.data + outer.size, path, names, 4,
                      [&](const Field &f, const std::string &n) {
                        if (f.number < 1 || f.number > 3)
                          return true;
                        if (f.type != Bytes)
                          return d.fail(n, "expected a message");
                        // A oneof: the last member on the wire wins; a repeated
                        // member of the same kind merges into it, as protobuf
                        // merges messages.
                        Step::Kind kind = (Step::Kind)f.number;
                        if (!any || s.kind != kind) {
                          s.launch = Launch();
                          s.gemm = Gemm();
                          s.gemm.batch = 0; // proto3 defaults, not the C++ ones
                          s.gemm.alpha = 0;
                          s.gemm.dtype = DType::Bool;
                          s.copy = Copy();
                        }
                        any = true;
                        s.kind = kind;
                        if (kind == Step::Kind::Launch)
                          return decodeLaunch(d, f, n, s.launch);
                        if (kind == Step::Kind::Gemm)
                          return decodeGemm(d, f, n, s.gemm);
                        return decodeCopy(d, f, n, s.copy);
                      });
  if (ok && !any)
    return d.fail(path, "no launch, gemm or copy");
  return ok;
}

bool decodeFunction(Decoder &d, const Field &outer, const std::string &path,
                    Function &fn) {
  static const char *const names[] = {nullptr, "name", "args", "results",
                                      "steps"};
  return d.message(outer.data, outer.data + outer.size, path, names, 5,
                   [&](const Field &f, const std::string &n) {
                     switch (f.number) {
                     case 1:
                       return d.bytes(f, n, fn.name);
                     case 2:
                       if (f.type != Bytes)
                         return d.fail(n, "expected a message");
                       fn.args.emplace_back();
                       return decodeArg(d, f, indexed(n, fn.args.size() - 1),
                                        fn.args.back());
                     case 3:
                       if (f.type != Bytes)
                         return d.fail(n, "expected a message");
                       fn.results.emplace_back();
                       return decodeResult(d, f,
                                           indexed(n, fn.results.size() - 1),
                                           fn.results.back());
                     case 4:
                       if (f.type != Bytes)
                         return d.fail(n, "expected a message");
                       fn.steps.emplace_back();
                       return decodeStep(d, f, indexed(n, fn.steps.size() - 1),
                                         fn.steps.back());
                     }
                     return true;
                   });
}

bool decodeTop(Decoder &d, const uint8_t *data, size_t size, Program &p) {
  static const char *const names[] = {nullptr,
                                      "format_version",
                                      "producer",
                                      "buffers",
                                      "params",
                                      "kernels",
                                      "functions",
                                      "arena_bytes",
                                      "arena_alignment",
                                      "spec_json",
                                      "adapter_config_json",
                                      "weights_path",
                                      "buffer_bytes_sum",
                                      "init_data"};
  auto needMessage = [&](const Field &f, const std::string &n) {
    return f.type == Bytes || d.fail(n, "expected a message");
  };
  return d.message(
      data, data + size, "", names, 14,
      [&](const Field &f, const std::string &n) {
        switch (f.number) {
        case 1:
          return d.u32(f, n, p.formatVersion);
        case 2:
          return d.bytes(f, n, p.producer);
        case 3:
          if (!needMessage(f, n))
            return false;
          p.buffers.emplace_back();
          p.buffers.back().dtype = DType::Bool; // proto3 default: enum 0
          return decodeBuffer(d, f, indexed(n, p.buffers.size() - 1),
                              p.buffers.back());
        case 4:
          if (!needMessage(f, n))
            return false;
          p.params.emplace_back();
          p.params.back().dtype = DType::Bool;
          return decodeParam(d, f, indexed(n, p.params.size() - 1),
                             p.params.back());
        case 5:
          if (!needMessage(f, n))
            return false;
          p.kernels.emplace_back();
          return decodeKernel(d, f, indexed(n, p.kernels.size() - 1),
                              p.kernels.back());
        case 6:
          if (!needMessage(f, n))
            return false;
          p.functions.emplace_back();
          return decodeFunction(d, f, indexed(n, p.functions.size() - 1),
                                p.functions.back());
        case 7:
          return d.u64(f, n, p.arenaBytes);
        case 8:
          return d.u64(f, n, p.arenaAlignment);
        case 9:
          return d.bytes(f, n, p.specJson);
        case 10:
          return d.bytes(f, n, p.adapterConfigJson);
        case 11:
          return d.bytes(f, n, p.weightsPath);
        case 12:
          return d.u64(f, n, p.bufferBytesSum);
        case 13:
          return d.bytes(f, n, p.initData);
        }
        return true;
      });
}

//===----------------------------------------------------------------------===//
// Validation
//===----------------------------------------------------------------------===//

/// numel * dtypeSize(dtype), or false when a dim is negative or it overflows.
bool byteSizeOf(const std::vector<int64_t> &shape, DType dtype,
                uint64_t &bytes) {
  uint64_t n = dtypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0)
      return false;
    if (d && n > std::numeric_limits<uint64_t>::max() / (uint64_t)d)
      return false;
    n *= (uint64_t)d;
  }
  bytes = n;
  return true;
}

std::string u(uint64_t v) { return std::to_string(v); }

class Validator {
public:
  Validator(const Program &p, std::string &error) : p_(p), error_(error) {}

  bool fail(const std::string &path, const std::string &message) {
    error_ = "program: " + path + ": " + message;
    return false;
  }

  bool run() {
    if (p_.formatVersion != 1)
      return fail("format_version", "unsupported version " +
                                        u(p_.formatVersion) +
                                        " (this runtime reads 1)");
    if (p_.arenaAlignment == 0 ||
        (p_.arenaAlignment & (p_.arenaAlignment - 1)) ||
        p_.arenaAlignment > 4096)
      return fail("arena_alignment",
                  u(p_.arenaAlignment) + " is not a power of two <= 4096");
    for (size_t i = 0; i < p_.params.size(); ++i)
      if (!param(i))
        return false;
    for (size_t i = 0; i < p_.params.size(); ++i) {
      const Param &q = p_.params[i];
      if (q.stateOf.empty())
        continue;
      bool found = false;
      for (const Param &o : p_.params)
        found |= o.name == q.stateOf;
      if (!found)
        return fail(indexed("params", i) + ".state_of",
                    "no param named '" + q.stateOf + "'");
    }
    for (size_t i = 0; i < p_.buffers.size(); ++i)
      if (!buffer(i))
        return false;
    for (size_t i = 0; i < p_.kernels.size(); ++i) {
      const Kernel &k = p_.kernels[i];
      std::string path = indexed("kernels", i);
      if (k.symbol.empty())
        return fail(path + ".symbol", "empty");
      for (size_t j = 0; j < i; ++j)
        if (p_.kernels[j].symbol == k.symbol)
          return fail(path + ".symbol",
                      "'" + k.symbol + "' also names kernels[" + u(j) + "]");
    }
    for (size_t i = 0; i < p_.functions.size(); ++i)
      if (!function(i))
        return false;
    return savedKeysUnique();
  }

private:
  /// One tensor per key in the saved adapter, whether a param or a
  /// function result holds it.
  bool savedKeysUnique() {
    std::map<std::string, std::string> holder;
    auto claim = [&](const std::string &key, const std::string &path) {
      if (key.empty())
        return true;
      auto [it, inserted] = holder.emplace(key, path);
      return inserted ||
             fail(path, "'" + key + "' is saved by " + it->second + " already");
    };
    for (size_t i = 0; i < p_.params.size(); ++i)
      if (!claim(p_.params[i].peftKey, indexed("params", i) + ".peft_key"))
        return false;
    for (size_t i = 0; i < p_.functions.size(); ++i)
      for (size_t r = 0; r < p_.functions[i].results.size(); ++r)
        if (!claim(p_.functions[i].results[r].peftKey,
                   indexed("functions", i) + "." + indexed("results", r) +
                       ".peft_key"))
          return false;
    return true;
  }

  bool bufferIndex(const std::string &path, uint32_t index) {
    if (index >= p_.buffers.size())
      return fail(path, "buffer " + u(index) + " out of range (" +
                            u(p_.buffers.size()) + " buffers)");
    return true;
  }

  bool param(size_t i) {
    const Param &q = p_.params[i];
    std::string path = indexed("params", i);
    if (q.name.empty())
      return fail(path + ".name", "empty");
    for (size_t j = 0; j < i; ++j)
      if (p_.params[j].name == q.name)
        return fail(path + ".name",
                    "'" + q.name + "' also names params[" + u(j) + "]");
    uint64_t bytes;
    if (!byteSizeOf(q.shape, q.dtype, bytes))
      return fail(path + ".shape", "negative or overflowing dimensions");
    switch (q.init) {
    case Param::Init::File:
      if (q.fileLength != bytes)
        return fail(path + ".file_length", u(q.fileLength) + " bytes, but " +
                                               std::string(dtypeName(q.dtype)) +
                                               " " + shapeString(q.shape) +
                                               " needs " + u(bytes));
      if (q.fileOffset > std::numeric_limits<uint64_t>::max() - q.fileLength)
        return fail(path + ".file_offset", "overflows");
      break;
    case Param::Init::Data:
      if (q.dataLength != bytes)
        return fail(path + ".data_length", u(q.dataLength) + " bytes, but " +
                                               std::string(dtypeName(q.dtype)) +
                                               " " + shapeString(q.shape) +
                                               " needs " + u(bytes));
      if (q.dataOffset > p_.initData.size() ||
          q.dataLength > p_.initData.size() - q.dataOffset)
        return fail(path + ".data_offset",
                    "[" + u(q.dataOffset) + ", +" + u(q.dataLength) +
                        ") outside init_data (" + u(p_.initData.size()) +
                        " bytes)");
      break;
    case Param::Init::Zeros:
    case Param::Init::Ones:
      break;
    }
    if (q.keyTransposed && q.shape.size() != 2)
      return fail(path + ".key_transposed",
                  "needs a 2-D param, not " + shapeString(q.shape));
    return true;
  }

  static std::string shapeString(const std::vector<int64_t> &shape) {
    if (shape.empty())
      return "scalar";
    std::string s;
    for (size_t i = 0; i < shape.size(); ++i)
      s += (i ? "x" : "") + std::to_string(shape[i]);
    return s;
  }

  bool buffer(size_t i) {
    const Buffer &b = p_.buffers[i];
    std::string path = indexed("buffers", i);
    uint64_t bytes;
    if (!byteSizeOf(b.shape, b.dtype, bytes))
      return fail(path + ".shape", "negative or overflowing dimensions");
    if (b.bytes != bytes)
      return fail(path + ".bytes",
                  u(b.bytes) + ", but " + std::string(dtypeName(b.dtype)) +
                      " " + shapeString(b.shape) + " has " + u(bytes));
    switch (b.kind) {
    case Buffer::Kind::Arena:
      if (b.offset % p_.arenaAlignment)
        return fail(path + ".offset",
                    u(b.offset) + " is not a multiple of arena_alignment " +
                        u(p_.arenaAlignment));
      if (b.offset > p_.arenaBytes || b.bytes > p_.arenaBytes - b.offset)
        return fail(path, "[" + u(b.offset) + ", +" + u(b.bytes) +
                              ") outside arena_bytes " + u(p_.arenaBytes));
      break;
    case Buffer::Kind::Param: {
      if (b.param >= p_.params.size())
        return fail(path + ".param", "param " + u(b.param) + " out of range (" +
                                         u(p_.params.size()) + " params)");
      const Param &q = p_.params[b.param];
      if (q.dtype != b.dtype || q.shape != b.shape)
        return fail(path, std::string(dtypeName(b.dtype)) + " " +
                              shapeString(b.shape) + " but param '" + q.name +
                              "' is " + std::string(dtypeName(q.dtype)) + " " +
                              shapeString(q.shape));
      break;
    }
    case Buffer::Kind::Constant:
      if (b.constant.size() != b.bytes)
        return fail(path + ".constant",
                    u(b.constant.size()) + " bytes, expected " + u(b.bytes));
      break;
    case Buffer::Kind::View: {
      if (b.base == i)
        return fail(path + ".base", "a view of itself");
      if (!bufferIndex(path + ".base", b.base))
        return false;
      // Views may chain; walking at most buffers.size() links finds cycles.
      uint32_t at = b.base;
      for (size_t hops = 0; p_.buffers[at].kind == Buffer::Kind::View; ++hops) {
        if (hops > p_.buffers.size() ||
            p_.buffers[at].base >= p_.buffers.size())
          return fail(path + ".base", "views form a cycle or leave range");
        at = p_.buffers[at].base;
      }
      const Buffer &base = p_.buffers[b.base];
      if (b.offset > base.bytes || b.bytes > base.bytes - b.offset)
        return fail(path, "[" + u(b.offset) + ", +" + u(b.bytes) +
                              ") outside its base buffers[" + u(b.base) +
                              "] (" + u(base.bytes) + " bytes)");
      break;
    }
    }
    return true;
  }

  bool function(size_t i) {
    const Function &f = p_.functions[i];
    std::string path = indexed("functions", i);
    if (f.name.empty())
      return fail(path + ".name", "empty");
    for (size_t j = 0; j < i; ++j)
      if (p_.functions[j].name == f.name)
        return fail(path + ".name",
                    "'" + f.name + "' also names functions[" + u(j) + "]");
    for (size_t a = 0; a < f.args.size(); ++a) {
      const Arg &arg = f.args[a];
      std::string ap = path + "." + indexed("args", a);
      if (!bufferIndex(ap + ".buffer", arg.buffer))
        return false;
      const Buffer &b = p_.buffers[arg.buffer];
      if (arg.isStep && (!b.shape.empty() || b.dtype != DType::I64))
        return fail(ap, "the step counter must be an i64 scalar, not " +
                            std::string(dtypeName(b.dtype)) + " " +
                            shapeString(b.shape));
      if (arg.indexLimit < 0 ||
          (arg.indexLimit > 0 && (isFloat(b.dtype) || b.dtype == DType::Bool)))
        return fail(ap, "index_limit " + std::to_string(arg.indexLimit) +
                            " must be 0, or positive on an integer input");
    }
    for (size_t r = 0; r < f.results.size(); ++r) {
      std::string rp = path + "." + indexed("results", r);
      if (!bufferIndex(rp + ".buffer", f.results[r].buffer))
        return false;
      // Saving an adapter has no data to pass.
      if (!f.results[r].peftKey.empty() && !f.args.empty())
        return fail(rp + ".peft_key",
                    "'" + f.results[r].peftKey + "' is saved from function '" +
                        f.name + "', which takes " + u(f.args.size()) +
                        " arguments (a saved result's function takes none)");
    }
    for (size_t s = 0; s < f.steps.size(); ++s)
      if (!step(f.steps[s], path + "." + indexed("steps", s)))
        return false;
    return true;
  }

  /// Elements a GEMM operand spans: (batch-1)*stride + rows*cols.
  bool operandFits(const std::string &path, const Gemm &g, uint32_t buffer,
                   int64_t stride, int64_t rows, int64_t cols) {
    const Buffer &b = p_.buffers[buffer];
    if (b.dtype != g.dtype)
      return fail(path, std::string(dtypeName(b.dtype)) +
                            " buffer, but the gemm is " +
                            std::string(dtypeName(g.dtype)));
    // Dimensions (< 2^31) and strides (< 2^40) are bounded before this, so
    // the span cannot overflow 128 bits.
    unsigned __int128 span =
        (unsigned __int128)(g.batch - 1) * (uint64_t)stride +
        (unsigned __int128)(uint64_t)rows * (uint64_t)cols;
    if (span * dtypeSize(g.dtype) > b.bytes)
      return fail(path,
                  "the gemm reads " + u((uint64_t)(span * dtypeSize(g.dtype))) +
                      " bytes, buffer " + u(buffer) + " has " + u(b.bytes));
    return true;
  }

  bool step(const Step &s, const std::string &path) {
    switch (s.kind) {
    case Step::Kind::Launch: {
      const Launch &l = s.launch;
      std::string lp = path + ".launch";
      if (l.kernel >= p_.kernels.size())
        return fail(lp + ".kernel", "kernel " + u(l.kernel) +
                                        " out of range (" +
                                        u(p_.kernels.size()) + " kernels)");
      const Kernel &k = p_.kernels[l.kernel];
      if (l.args.size() != k.numArgs)
        return fail(lp + ".args", u(l.args.size()) + " buffers, but kernel '" +
                                      k.symbol + "' takes " + u(k.numArgs));
      for (size_t a = 0; a < l.args.size(); ++a)
        if (!bufferIndex(lp + "." + indexed("args", a), l.args[a]))
          return false;
      if (l.extent < 0)
        return fail(lp + ".extent",
                    "negative (" + std::to_string(l.extent) + ")");
      return true;
    }
    case Step::Kind::Gemm: {
      const Gemm &g = s.gemm;
      std::string gp = path + ".gemm";
      if (!bufferIndex(gp + ".a", g.a) || !bufferIndex(gp + ".b", g.b) ||
          !bufferIndex(gp + ".c", g.c) ||
          (g.hasBias && !bufferIndex(gp + ".bias", g.bias)))
        return false;
      constexpr int64_t kMaxDim = (int64_t)1 << 31;
      // Bounded so that every span below fits in 128-bit arithmetic.
      const std::tuple<const char *, int64_t, int64_t> dims[] = {
          {"batch", g.batch, 1}, {"m", g.m, 0}, {"n", g.n, 0}, {"k", g.k, 0}};
      for (auto [name, v, least] : dims)
        if (v < least || v >= kMaxDim)
          return fail(gp + "." + name,
                      "out of range (" + std::to_string(v) + ")");
      const std::pair<const char *, int64_t> strides[] = {
          {"stride_a", g.strideA},
          {"stride_b", g.strideB},
          {"stride_c", g.strideC}};
      for (auto [name, v] : strides)
        if (v < 0 || v >= ((int64_t)1 << 40))
          return fail(gp + "." + name,
                      "out of range (" + std::to_string(v) + ")");
      if (g.batch > 1 && g.strideC < g.m * g.n)
        return fail(gp + ".stride_c",
                    std::to_string(g.strideC) +
                        " makes batches of C overlap (m*n = " +
                        std::to_string(g.m * g.n) + ")");
      if (!operandFits(gp + ".a", g, g.a, g.strideA, g.m, g.k) ||
          !operandFits(gp + ".b", g, g.b, g.strideB, g.k, g.n) ||
          !operandFits(gp + ".c", g, g.c, g.strideC, g.m, g.n))
        return false;
      if (g.hasBias) {
        const Buffer &bias = p_.buffers[g.bias];
        uint64_t want = (uint64_t)g.n * dtypeSize(bias.dtype);
        if (bias.bytes != want)
          return fail(gp + ".bias", "buffer " + u(g.bias) + " has " +
                                        u(bias.bytes) + " bytes, a [" +
                                        std::to_string(g.n) + "] bias needs " +
                                        u(want));
      }
      return true;
    }
    case Step::Kind::Copy: {
      const Copy &c = s.copy;
      std::string cp = path + ".copy";
      if (!bufferIndex(cp + ".src", c.src) || !bufferIndex(cp + ".dst", c.dst))
        return false;
      if (p_.buffers[c.src].bytes != p_.buffers[c.dst].bytes)
        return fail(cp, "src has " + u(p_.buffers[c.src].bytes) +
                            " bytes, dst " + u(p_.buffers[c.dst].bytes));
      return true;
    }
    }
    return fail(path, "unknown step kind");
  }

  const Program &p_;
  std::string &error_;
};

} // namespace

std::string encodeProgram(const Program &program) {
  Writer w;
  w.u64(1, program.formatVersion);
  w.bytes(2, program.producer);
  for (const Buffer &b : program.buffers)
    w.message(3, encode(b));
  for (const Param &p : program.params)
    w.message(4, encode(p));
  for (const Kernel &k : program.kernels)
    w.message(5, encode(k));
  for (const Function &f : program.functions)
    w.message(6, encode(f));
  w.u64(7, program.arenaBytes);
  w.u64(8, program.arenaAlignment);
  w.bytes(9, program.specJson);
  w.bytes(10, program.adapterConfigJson);
  w.bytes(11, program.weightsPath);
  w.u64(12, program.bufferBytesSum);
  w.bytes(13, program.initData);
  return w.out;
}

bool decodeProgram(const uint8_t *data, size_t size, Program &out,
                   std::string &error) {
  // Fields absent on the wire take proto3's defaults, not the C++ ones.
  Program p;
  p.formatVersion = 0;
  p.arenaAlignment = 0;
  Decoder d(error);
  d.begin_ = data;
  if (!decodeTop(d, data, size, p))
    return false;
  Validator v(p, error);
  if (!v.run())
    return false;
  out = std::move(p);
  return true;
}

} // namespace peft::program
