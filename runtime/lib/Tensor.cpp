#include "peft/Tensor.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace peft {

int64_t numElements(const Shape &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string shapeToString(const Shape &shape) {
  if (shape.empty())
    return "scalar";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      s += "x";
    s += std::to_string(shape[i]);
  }
  return s;
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  owned_ = std::make_shared<std::vector<uint8_t>>(byteSize() ? byteSize() : 1, 0);
  data_ = owned_->data();
}

Tensor Tensor::view(DType dtype, Shape shape, std::shared_ptr<MappedFile> file,
                    const uint8_t *bytes) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.mapped_ = std::move(file);
  t.data_ = const_cast<uint8_t *>(bytes);
  return t;
}

uint8_t *Tensor::mutableBytes() {
  if (!owned_) {
    auto copy = std::make_shared<std::vector<uint8_t>>(byteSize() ? byteSize() : 1, 0);
    if (byteSize())
      std::memcpy(copy->data(), data_, byteSize());
    owned_ = std::move(copy);
    mapped_.reset();
    data_ = owned_->data();
  } else if (owned_.use_count() > 1) {
    // Copy on write: reshaped() shares storage.
    owned_ = std::make_shared<std::vector<uint8_t>>(*owned_);
    data_ = owned_->data();
  }
  return data_;
}

double Tensor::getDouble(int64_t i) const {
  switch (dtype_) {
  case DType::Bool: return data_[i] ? 1.0 : 0.0;
  case DType::I8: return (double)reinterpret_cast<const int8_t *>(data_)[i];
  case DType::U8: return (double)data_[i];
  case DType::I32: return (double)data<int32_t>()[i];
  case DType::I64: return (double)data<int64_t>()[i];
  case DType::F16: return halfToFloat(data<uint16_t>()[i]);
  case DType::BF16: return bf16ToFloat(data<uint16_t>()[i]);
  case DType::F32: return data<float>()[i];
  case DType::F64: return data<double>()[i];
  }
  return 0;
}

int64_t Tensor::getInt(int64_t i) const {
  switch (dtype_) {
  case DType::Bool: return data_[i] ? 1 : 0;
  case DType::I8: return reinterpret_cast<const int8_t *>(data_)[i];
  case DType::U8: return data_[i];
  case DType::I32: return data<int32_t>()[i];
  case DType::I64: return data<int64_t>()[i];
  default: {
    double v = getDouble(i);
    if (std::isnan(v))
      return 0;
    return (int64_t)v;
  }
  }
}

void Tensor::setDouble(int64_t i, double v) {
  uint8_t *p = mutableBytes();
  switch (dtype_) {
  case DType::Bool: p[i] = v != 0.0; break;
  case DType::I8: reinterpret_cast<int8_t *>(p)[i] = (int8_t)(int64_t)v; break;
  case DType::U8: p[i] = (uint8_t)(int64_t)v; break;
  case DType::I32: reinterpret_cast<int32_t *>(p)[i] = (int32_t)(int64_t)v; break;
  case DType::I64: reinterpret_cast<int64_t *>(p)[i] = (int64_t)v; break;
  case DType::F16: reinterpret_cast<uint16_t *>(p)[i] = floatToHalf((float)v); break;
  case DType::BF16: reinterpret_cast<uint16_t *>(p)[i] = floatToBf16((float)v); break;
  case DType::F32: reinterpret_cast<float *>(p)[i] = (float)v; break;
  case DType::F64: reinterpret_cast<double *>(p)[i] = v; break;
  }
}

void Tensor::setInt(int64_t i, int64_t v) {
  uint8_t *p = mutableBytes();
  switch (dtype_) {
  case DType::Bool: p[i] = v != 0; break;
  case DType::I8: reinterpret_cast<int8_t *>(p)[i] = (int8_t)v; break;
  case DType::U8: p[i] = (uint8_t)v; break;
  case DType::I32: reinterpret_cast<int32_t *>(p)[i] = (int32_t)v; break;
  case DType::I64: reinterpret_cast<int64_t *>(p)[i] = v; break;
  default: setDouble(i, (double)v); break;
  }
}

Tensor Tensor::reshaped(Shape shape) const {
  if (numElements(shape) != numel())
    throw std::logic_error("Tensor::reshaped: element count mismatch");
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::castTo(DType dtype) const {
  if (dtype == dtype_)
    return *this;
  Tensor out(dtype, shape_);
  int64_t n = numel();
  bool srcInt = !isFloat(dtype_);
  for (int64_t i = 0; i < n; ++i) {
    if (srcInt && !isFloat(dtype))
      out.setInt(i, getInt(i));
    else if (!isFloat(dtype))
      out.setInt(i, dtype == DType::Bool ? (getDouble(i) != 0.0) : getInt(i));
    else
      out.setDouble(i, getDouble(i));
  }
  return out;
}

} // namespace peft
