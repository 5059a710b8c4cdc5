#include "peft/Tensor.h"

#include <cmath>
#include <cstring>
#include <limits>
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

Tensor::Tensor(DType dtype, Shape shape)
    : dtype_(dtype), shape_(std::move(shape)) {
  owned_ =
      std::make_shared<std::vector<uint8_t>>(byteSize() ? byteSize() : 1, 0);
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
    auto copy =
        std::make_shared<std::vector<uint8_t>>(byteSize() ? byteSize() : 1, 0);
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

namespace {
// Views into a safetensors or ONNX file need not be aligned for their element
// type, so elements are loaded and stored through memcpy.
template <typename T> T load(const uint8_t *p, int64_t i) {
  T v;
  std::memcpy(&v, p + i * (int64_t)sizeof(T), sizeof(T));
  return v;
}
template <typename T> void store(uint8_t *p, int64_t i, T v) {
  std::memcpy(p + i * (int64_t)sizeof(T), &v, sizeof(T));
}

/// Float to integer: truncate toward zero, NaN gives 0, values outside the
/// range of T saturate (a plain C++ cast of those is undefined behaviour).
template <typename T> T truncSaturate(double v) {
  if (std::isnan(v))
    return 0;
  // Both limits of the integer types used here are exact in double except
  // the int64 maximum, which rounds up to 2^63; hence `>=`.
  constexpr double lo = (double)std::numeric_limits<T>::min();
  constexpr double hi = (double)std::numeric_limits<T>::max();
  if (v <= lo)
    return std::numeric_limits<T>::min();
  if (v >= hi)
    return std::numeric_limits<T>::max();
  return (T)v;
}
} // namespace

double Tensor::getDouble(int64_t i) const {
  switch (dtype_) {
  case DType::Bool:
    return data_[i] ? 1.0 : 0.0;
  case DType::I8:
    return (double)(int8_t)data_[i];
  case DType::U8:
    return (double)data_[i];
  case DType::I32:
    return (double)load<int32_t>(data_, i);
  case DType::I64:
    return (double)load<int64_t>(data_, i);
  case DType::F16:
    return halfToFloat(load<uint16_t>(data_, i));
  case DType::BF16:
    return bf16ToFloat(load<uint16_t>(data_, i));
  case DType::F32:
    return load<float>(data_, i);
  case DType::F64:
    return load<double>(data_, i);
  }
  return 0;
}

int64_t Tensor::getInt(int64_t i) const {
  switch (dtype_) {
  case DType::Bool:
    return data_[i] ? 1 : 0;
  case DType::I8:
    return (int8_t)data_[i];
  case DType::U8:
    return data_[i];
  case DType::I32:
    return load<int32_t>(data_, i);
  case DType::I64:
    return load<int64_t>(data_, i);
  default:
    return truncSaturate<int64_t>(getDouble(i));
  }
}

void Tensor::setDouble(int64_t i, double v) {
  uint8_t *p = mutableBytes();
  switch (dtype_) {
  case DType::Bool:
    p[i] = v != 0.0;
    break;
  case DType::I8:
    store(p, i, truncSaturate<int8_t>(v));
    break;
  case DType::U8:
    store(p, i, truncSaturate<uint8_t>(v));
    break;
  case DType::I32:
    store(p, i, truncSaturate<int32_t>(v));
    break;
  case DType::I64:
    store(p, i, truncSaturate<int64_t>(v));
    break;
  case DType::F16:
    store(p, i, doubleToHalf(v));
    break;
  case DType::BF16:
    store(p, i, doubleToBf16(v));
    break;
  case DType::F32:
    store(p, i, (float)v);
    break;
  case DType::F64:
    store(p, i, v);
    break;
  }
}

void Tensor::setInt(int64_t i, int64_t v) {
  uint8_t *p = mutableBytes();
  // Integer to narrower integer wraps (two's complement), as integer
  // arithmetic in the evaluated program does.
  switch (dtype_) {
  case DType::Bool:
    p[i] = v != 0;
    break;
  case DType::I8:
    store(p, i, (int8_t)v);
    break;
  case DType::U8:
    store(p, i, (uint8_t)v);
    break;
  case DType::I32:
    store(p, i, (int32_t)v);
    break;
  case DType::I64:
    store(p, i, v);
    break;
  default:
    setDouble(i, (double)v);
    break;
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
  // Integers go through int64 so that i64 values above 2^53 stay exact;
  // anything involving a float goes through double (setDouble truncates
  // toward zero and saturates for integer targets, and maps to bool by
  // "nonzero").
  bool exactInts = !isFloat(dtype_) && !isFloat(dtype);
  for (int64_t i = 0; i < n; ++i) {
    if (exactInts)
      out.setInt(i, getInt(i));
    else
      out.setDouble(i, getDouble(i));
  }
  return out;
}

} // namespace peft
