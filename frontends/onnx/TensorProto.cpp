//===- TensorProto.cpp - ONNX TensorProto decoding ------------------------===//
#include "frontends/onnx/TensorProto.h"
#include "frontends/onnx/NodeImport.h"

#include <cstring>
#include <sys/stat.h>

namespace peft::onnx_import {

Shape tensorShape(const onnx::TensorProto &t) {
  return Shape(t.dims().begin(), t.dims().end());
}

bool externalRange(const onnx::TensorProto &t, const LoadedModel &model,
                   ByteRange &out, std::string &error) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto &kv : t.external_data()) {
    if (kv.key() == "location")
      location = kv.value();
    else if (kv.key() == "offset")
      offset = std::strtoll(kv.value().c_str(), nullptr, 10);
    else if (kv.key() == "length")
      length = std::strtoll(kv.value().c_str(), nullptr, 10);
  }
  std::string name = "tensor '" + t.name() + "'";
  if (location.empty()) {
    error = name + " is stored externally but has no 'location'";
    return false;
  }
  if (location == kSelfLocation) {
    out.file = model.path;
  } else {
    if (location[0] == '/' || location.find("..") != std::string::npos) {
      error = name + ": external data location '" + location +
              "' must be a relative path inside the model's folder";
      return false;
    }
    out.file = model.directory + "/" + location;
  }
  auto dtype = dtypeFromOnnx(t.data_type());
  if (!dtype) {
    error = name + " has unsupported data type " + std::to_string(t.data_type());
    return false;
  }
  uint64_t need = (uint64_t)numElements(tensorShape(t)) * dtypeSize(*dtype);
  if (length < 0)
    length = (int64_t)need;
  if (offset < 0 || (uint64_t)length != need) {
    error = name + ": external data gives " + std::to_string(length) +
            " bytes at offset " + std::to_string(offset) + " but " +
            std::string(dtypeName(*dtype)) + "[" + shapeToString(tensorShape(t)) +
            "] needs " + std::to_string(need);
    return false;
  }
  struct stat st;
  if (stat(out.file.c_str(), &st) != 0) {
    error = name + ": external data file '" + out.file +
            "' is missing; keep it beside the model (as saved by "
            "onnx.save_model(..., save_as_external_data=True))";
    return false;
  }
  if ((uint64_t)offset + need > (uint64_t)st.st_size) {
    error = name + ": external data file '" + out.file + "' is " +
            std::to_string(st.st_size) + " bytes, too short for " +
            std::to_string(need) + " bytes at offset " + std::to_string(offset) +
            " (truncated copy?)";
    return false;
  }
  out.offset = (uint64_t)offset;
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
  int64_t n = numElements(shape);
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    ByteRange range;
    if (!externalRange(t, model, range, error))
      return false;
    auto file = MappedFile::open(range.file, error);
    if (!file)
      return false;
    out = Tensor::view(*dtype, shape, file, file->data() + range.offset);
    return true;
  }
  out = Tensor(*dtype, shape);
  auto bad = [&](size_t have) {
    error = "tensor '" + t.name() + "' holds " + std::to_string(have) +
            " values but its shape " + shapeToString(shape) + " needs " +
            std::to_string(n);
    return false;
  };
  if (t.has_raw_data()) {
    if (t.raw_data().size() != out.byteSize())
      return bad(t.raw_data().size() / std::max<size_t>(1, dtypeSize(*dtype)));
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
