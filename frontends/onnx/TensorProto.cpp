//===- TensorProto.cpp - ONNX TensorProto decoding ------------------------===//
#include "frontends/onnx/TensorProto.h"
#include "frontends/onnx/NodeImport.h"

#include <cstring>
#include <sys/stat.h>

namespace peft::onnx_import {

Shape tensorShape(const onnx::TensorProto &t) {
  return Shape(t.dims().begin(), t.dims().end());
}

namespace {

/// A non-negative decimal integer, all of `text`.
bool parseOffset(const std::string &text, uint64_t &out) {
  if (text.empty() || text.size() > 19)
    return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + (uint64_t)(c - '0');
  }
  out = v;
  return true;
}

/// External data must stay inside the model's folder, as onnx's checker
/// requires: no absolute paths and no ".." components.
bool insideModelFolder(const std::string &location) {
  if (location.empty() || location[0] == '/')
    return false;
  size_t begin = 0;
  while (begin <= location.size()) {
    size_t slash = location.find('/', begin);
    size_t end = slash == std::string::npos ? location.size() : slash;
    if (location.compare(begin, end - begin, "..") == 0 && end - begin == 2)
      return false;
    if (slash == std::string::npos)
      break;
    begin = slash + 1;
  }
  return true;
}

} // namespace

bool tensorByteSize(const onnx::TensorProto &t, DType dtype, uint64_t &bytes,
                    std::string &error) {
  // Dimensions come from the file: refuse what would overflow or could never
  // be allocated rather than trusting them.
  constexpr uint64_t kLimit = uint64_t(1) << 48;
  uint64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) {
      error = "tensor '" + t.name() + "' has a negative dimension [" +
              shapeToString(tensorShape(t)) + "]";
      return false;
    }
    if (d != 0 && n > kLimit / (uint64_t)d) {
      error = "tensor '" + t.name() + "' has an impossible shape [" +
              shapeToString(tensorShape(t)) + "]";
      return false;
    }
    n *= (uint64_t)d;
  }
  bytes = n * dtypeSize(dtype);
  return true;
}

bool externalRange(const onnx::TensorProto &t, const LoadedModel &model,
                   ByteRange &out, std::string &error) {
  std::string location, offsetText, lengthText;
  for (const auto &kv : t.external_data()) {
    if (kv.key() == "location")
      location = kv.value();
    else if (kv.key() == "offset")
      offsetText = kv.value();
    else if (kv.key() == "length")
      lengthText = kv.value();
  }
  std::string name = "tensor '" + t.name() + "'";
  if (location.empty()) {
    error = name + " is stored externally but has no 'location'";
    return false;
  }
  bool self = location == kSelfLocation;
  if (self) {
    out.file = model.path;
  } else {
    if (!insideModelFolder(location)) {
      error = name + ": external data location '" + location +
              "' must be a relative path inside the model's folder";
      return false;
    }
    out.file = model.directory + "/" + location;
  }
  uint64_t offset = 0, length = 0;
  if (!offsetText.empty() && !parseOffset(offsetText, offset)) {
    error = name + ": external data offset '" + offsetText +
            "' is not a non-negative integer";
    return false;
  }
  if (!lengthText.empty() && !parseOffset(lengthText, length)) {
    error = name + ": external data length '" + lengthText +
            "' is not a non-negative integer";
    return false;
  }
  auto dtype = dtypeFromOnnx(t.data_type());
  if (!dtype) {
    error =
        name + " has unsupported data type " + std::to_string(t.data_type());
    return false;
  }
  Shape shape = tensorShape(t);
  uint64_t need = 0;
  if (!tensorByteSize(t, *dtype, need, error))
    return false;
  if (lengthText.empty())
    length = need;
  std::string what = std::string(dtypeName(*dtype)) + "[" +
                     shapeToString(shape) + "] needs " + std::to_string(need) +
                     " bytes";
  if (length != need) {
    error = self ? name + " holds " + std::to_string(length) +
                       " bytes of data but " + what
                 : name + ": external data gives " + std::to_string(length) +
                       " bytes at offset " + std::to_string(offset) + " but " +
                       what;
    return false;
  }
  struct stat st;
  if (stat(out.file.c_str(), &st) != 0) {
    error = name + ": external data file '" + out.file +
            "' is missing; keep it beside the model (as saved by "
            "onnx.save_model(..., save_as_external_data=True))";
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    error = name + ": external data '" + out.file + "' is not a regular file";
    return false;
  }
  if (offset > (uint64_t)st.st_size || need > (uint64_t)st.st_size - offset) {
    error = name + ": external data file '" + out.file + "' is " +
            std::to_string(st.st_size) + " bytes, too short for " +
            std::to_string(need) + " bytes at offset " +
            std::to_string(offset) + " (truncated copy?)";
    return false;
  }
  out.offset = offset;
  out.length = need;
  return true;
}

bool decodeTensor(const onnx::TensorProto &t, const LoadedModel &model,
                  Tensor &out, std::string &error) {
  auto dtype = dtypeFromOnnx(t.data_type());
  if (!dtype) {
    error = "tensor '" + t.name() + "' has unsupported data type " +
            std::to_string(t.data_type());
    return false;
  }
  Shape shape = tensorShape(t);
  uint64_t bytes = 0;
  if (!tensorByteSize(t, *dtype, bytes, error))
    return false;
  int64_t n = numElements(shape);
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    ByteRange range;
    if (!externalRange(t, model, range, error))
      return false;
    auto file = model.map(range.file, error);
    if (!file)
      return false;
    // The file may have changed since externalRange looked at it.
    if (range.offset + range.length > file->size()) {
      error = "tensor '" + t.name() + "': '" + range.file +
              "' is shorter than its data";
      return false;
    }
    out = Tensor::view(*dtype, shape, file, file->data() + range.offset);
    return true;
  }
  // Count what the message holds before allocating for the shape it claims.
  size_t have = 0;
  if (t.has_raw_data())
    have = t.raw_data().size() / std::max<size_t>(1, dtypeSize(*dtype));
  else if (*dtype == DType::F32)
    have = t.float_data_size();
  else if (*dtype == DType::F64)
    have = t.double_data_size();
  else if (*dtype == DType::I64)
    have = t.int64_data_size();
  else
    have = t.int32_data_size();
  bool sizeOk =
      t.has_raw_data() ? t.raw_data().size() == bytes : have == (uint64_t)n;
  auto bad = [&](size_t have) {
    error = "tensor '" + t.name() + "' holds " + std::to_string(have) +
            " values but its shape " + shapeToString(shape) + " needs " +
            std::to_string(n);
    return false;
  };
  if (!sizeOk)
    return bad(have);
  out = Tensor(*dtype, shape);
  if (t.has_raw_data()) {
    std::memcpy(out.mutableBytes(), t.raw_data().data(), out.byteSize());
    return true;
  }
  switch (*dtype) {
  case DType::F32:
    if (t.float_data_size() != n)
      return bad(t.float_data_size());
    for (int64_t i = 0; i < n; ++i)
      out.setDouble(i, t.float_data((int)i));
    return true;
  case DType::F64:
    if (t.double_data_size() != n)
      return bad(t.double_data_size());
    for (int64_t i = 0; i < n; ++i)
      out.setDouble(i, t.double_data((int)i));
    return true;
  case DType::I64:
    if (t.int64_data_size() != n)
      return bad(t.int64_data_size());
    for (int64_t i = 0; i < n; ++i)
      out.setInt(i, t.int64_data((int)i));
    return true;
  case DType::F16:
  case DType::BF16:
    if (t.int32_data_size() != n)
      return bad(t.int32_data_size());
    for (int64_t i = 0; i < n; ++i)
      out.mutableData<uint16_t>()[i] = (uint16_t)t.int32_data((int)i);
    return true;
  default: // bool, int8, uint8, int32 are stored in int32_data
    if (t.int32_data_size() != n)
      return bad(t.int32_data_size());
    for (int64_t i = 0; i < n; ++i)
      out.setInt(i, t.int32_data((int)i));
    return true;
  }
}

} // namespace peft::onnx_import
