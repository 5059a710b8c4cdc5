// A dense, row-major host tensor. Storage is either owned or a view into a
// memory-mapped file (kept alive by the tensor).
#pragma once

#include "peft/DType.h"
#include "peft/MappedFile.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace peft {

using Shape = std::vector<int64_t>;

int64_t numElements(const Shape &shape);
std::string shapeToString(const Shape &shape); // "2x16x32", "scalar"

class Tensor {
public:
  Tensor() = default;
  /// Zero-initialised owned tensor.
  Tensor(DType dtype, Shape shape);
  /// A read-only view of `bytes` inside `file` (no copy).
  static Tensor view(DType dtype, Shape shape, std::shared_ptr<MappedFile> file,
                     const uint8_t *bytes);

  DType dtype() const { return dtype_; }
  const Shape &shape() const { return shape_; }
  int64_t rank() const { return (int64_t)shape_.size(); }
  int64_t numel() const { return numElements(shape_); }
  size_t byteSize() const { return (size_t)numel() * dtypeSize(dtype_); }
  bool valid() const { return data_ != nullptr || numel() == 0; }

  const uint8_t *bytes() const { return data_; }
  /// Mutable bytes; copies a mapped view into owned storage first.
  uint8_t *mutableBytes();
  template <typename T> const T *data() const {
    return reinterpret_cast<const T *>(data_);
  }
  template <typename T> T *mutableData() {
    return reinterpret_cast<T *>(mutableBytes());
  }

  /// Element access through double / int64, whatever the dtype (used by the
  /// reference evaluator, which favours clarity over speed). setDouble into an
  /// integer dtype truncates toward zero and saturates (NaN gives 0); into
  /// bool it stores "nonzero"; into f16/bf16 it rounds once, to nearest even.
  /// setInt into a narrower integer dtype wraps (two's complement).
  double getDouble(int64_t i) const;
  int64_t getInt(int64_t i) const;
  void setDouble(int64_t i, double v);
  void setInt(int64_t i, int64_t v);

  /// Same bytes, new shape (numel must match).
  Tensor reshaped(Shape shape) const;
  /// Element-wise conversion: float->int truncates toward zero (saturating
  /// out of range, NaN -> 0), float->bool is "nonzero" (NaN -> true),
  /// int->narrower int wraps, as ONNX Cast / numpy astype.
  Tensor castTo(DType dtype) const;

private:
  DType dtype_ = DType::F32;
  Shape shape_;
  std::shared_ptr<std::vector<uint8_t>> owned_;
  std::shared_ptr<MappedFile> mapped_;
  uint8_t *data_ = nullptr;
};

} // namespace peft
