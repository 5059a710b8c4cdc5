//===- ShapeKernels.cpp - reshape, transpose, slice, gather, ... ----------===//
//
// Data movement copies elements byte for byte (so i64 indices and every
// float type move exactly); only cumsum and scatter reductions do arithmetic,
// in double for floats and int64 for integers.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/nn/NNOps.h"

#include <cstring>

using namespace mlir;

namespace peft::ref {
namespace {

/// The operand in the result's storage type (they agree unless an operand
/// came from outside the evaluator, e.g. an import-time constant).
Tensor asStorage(const Tensor &t, DType d) {
  return t.dtype() == d ? t : t.castTo(d);
}

/// Copies single elements between two tensors of one dtype.
class ElementCopier {
public:
  ElementCopier(const Tensor &src, Tensor &dst)
      : src_(src.bytes()), dst_(dst.mutableBytes()),
        size_(dtypeSize(dst.dtype())) {}
  void operator()(int64_t from, int64_t to) const {
    std::memcpy(dst_ + to * size_, src_ + from * size_, size_);
  }
  /// Copies `count` consecutive elements.
  void block(int64_t from, int64_t to, int64_t count) const {
    if (count > 0)
      std::memcpy(dst_ + to * size_, src_ + from * size_, count * size_);
  }

private:
  const uint8_t *src_;
  uint8_t *dst_;
  size_t size_;
};

int64_t product(ArrayRef<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

/// An index read from an indices tensor, negative ones counting from the end.
FailureOr<int64_t> wrapIndex(Operation *op, int64_t index, int64_t dim) {
  int64_t wrapped = index < 0 ? index + dim : index;
  if (wrapped < 0 || wrapped >= dim)
    return op->emitError("index ")
           << index << " is out of range for a dimension of size " << dim;
  return wrapped;
}

FailureOr<Tensor> transpose(Operation *op, ArrayRef<Tensor> in,
                            const EvalContext &ctx) {
  auto perm = cast<nn::TransposeOp>(op).getPerm();
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor x = asStorage(in[0], dtype);
  Tensor out(dtype, resultShape(op));
  std::vector<int64_t> inStrides = stridesOf(x.shape()), idx;
  ElementCopier copy(x, out);
  for (int64_t o = 0, n = out.numel(); o < n; ++o) {
    unravel(o, out.shape(), idx);
    int64_t src = 0;
    for (size_t d = 0; d < idx.size(); ++d)
      src += idx[d] * inStrides[perm[d]];
    copy(src, o);
  }
  return out;
}

FailureOr<Tensor> slice(Operation *op, ArrayRef<Tensor> in,
                        const EvalContext &ctx) {
  auto s = cast<nn::SliceOp>(op);
  ArrayRef<int64_t> starts = s.getStarts(), steps = s.getSteps();
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor x = asStorage(in[0], dtype);
  Tensor out(dtype, resultShape(op));
  std::vector<int64_t> inStrides = stridesOf(x.shape()), idx;
  ElementCopier copy(x, out);
  for (int64_t o = 0, n = out.numel(); o < n; ++o) {
    unravel(o, out.shape(), idx);
    int64_t src = 0;
    for (size_t d = 0; d < idx.size(); ++d)
      src += (starts[d] + idx[d] * steps[d]) * inStrides[d];
    copy(src, o);
  }
  return out;
}

FailureOr<Tensor> concat(Operation *op, ArrayRef<Tensor> in,
                         const EvalContext &ctx) {
  int64_t axis = cast<nn::ConcatOp>(op).getAxis();
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor out(dtype, resultShape(op));
  const Shape &shape = out.shape();
  int64_t outer = product(ArrayRef<int64_t>(shape).take_front(axis));
  int64_t inner = product(ArrayRef<int64_t>(shape).drop_front(axis + 1));
  int64_t outAxis = shape[axis], offset = 0;
  for (const Tensor &t : in) {
    Tensor x = asStorage(t, dtype);
    int64_t block = x.shape()[axis] * inner;
    ElementCopier copy(x, out);
    for (int64_t o = 0; o < outer; ++o)
      copy.block(o * block, (o * outAxis + offset) * inner, block);
    offset += x.shape()[axis];
  }
  return out;
}

FailureOr<Tensor> gather(Operation *op, ArrayRef<Tensor> in,
                         const EvalContext &ctx) {
  int64_t axis = cast<nn::GatherOp>(op).getAxis();
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor data = asStorage(in[0], dtype);
  const Tensor &indices = in[1];
  ArrayRef<int64_t> shape = data.shape();
  int64_t outer = product(shape.take_front(axis)), dim = shape[axis];
  int64_t inner = product(shape.drop_front(axis + 1));
  int64_t count = indices.numel();
  Tensor out(dtype, resultShape(op));
  ElementCopier copy(data, out);
  for (int64_t n = 0; n < count; ++n) {
    FailureOr<int64_t> i = wrapIndex(op, indices.getInt(n), dim);
    if (failed(i))
      return failure();
    for (int64_t o = 0; o < outer; ++o)
      copy.block((o * dim + *i) * inner, (o * count + n) * inner, inner);
  }
  return out;
}

FailureOr<Tensor> gatherElements(Operation *op, ArrayRef<Tensor> in,
                                 const EvalContext &ctx) {
  int64_t axis = cast<nn::GatherElementsOp>(op).getAxis();
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor data = asStorage(in[0], dtype);
  const Tensor &indices = in[1];
  Tensor out(dtype, resultShape(op));
  std::vector<int64_t> dataStrides = stridesOf(data.shape()), idx;
  ElementCopier copy(data, out);
  for (int64_t p = 0, n = indices.numel(); p < n; ++p) {
    unravel(p, indices.shape(), idx);
    FailureOr<int64_t> i = wrapIndex(op, indices.getInt(p), data.shape()[axis]);
    if (failed(i))
      return failure();
    idx[axis] = *i;
    int64_t src = 0;
    for (size_t d = 0; d < idx.size(); ++d) {
      if (idx[d] >= data.shape()[d])
        return op->emitError("indices shape ")
               << shapeToString(indices.shape()) << " reaches past data shape "
               << shapeToString(data.shape());
      src += idx[d] * dataStrides[d];
    }
    copy(src, p);
  }
  return out;
}

/// The linear offset in `data` of the index tuple `indices[tuple]` over the
/// `k` dimensions of `data` that follow `first`.
FailureOr<int64_t> tupleOffset(Operation *op, const Tensor &data,
                               const Tensor &indices, int64_t tuple, int64_t k,
                               int64_t first,
                               const std::vector<int64_t> &dataStrides) {
  int64_t offset = 0;
  for (int64_t j = 0; j < k; ++j) {
    FailureOr<int64_t> i =
        wrapIndex(op, indices.getInt(tuple * k + j), data.shape()[first + j]);
    if (failed(i))
      return failure();
    offset += *i * dataStrides[first + j];
  }
  return offset;
}

FailureOr<Tensor> gatherND(Operation *op, ArrayRef<Tensor> in,
                           const EvalContext &ctx) {
  int64_t b = cast<nn::GatherNDOp>(op).getBatchDims();
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor data = asStorage(in[0], dtype);
  const Tensor &indices = in[1];
  ArrayRef<int64_t> ds = data.shape(), is = indices.shape();
  int64_t k = is.back();
  int64_t batches = product(ds.take_front(b));
  int64_t perBatch = product(is.drop_front(b).drop_back()); // tuples per batch
  int64_t batchStride = product(ds.drop_front(b));
  int64_t inner = product(ds.drop_front(b + k)); // elements per tuple
  std::vector<int64_t> dataStrides = stridesOf(data.shape());
  Tensor out(dtype, resultShape(op));
  ElementCopier copy(data, out);
  for (int64_t bi = 0; bi < batches; ++bi)
    for (int64_t m = 0; m < perBatch; ++m) {
      int64_t tuple = bi * perBatch + m;
      FailureOr<int64_t> offset =
          tupleOffset(op, data, indices, tuple, k, b, dataStrides);
      if (failed(offset))
        return failure();
      copy.block(bi * batchStride + *offset, tuple * inner, inner);
    }
  return out;
}

FailureOr<Tensor> broadcastTo(Operation *op, ArrayRef<Tensor> in,
                              const EvalContext &ctx) {
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor x = asStorage(in[0], dtype);
  Tensor out(dtype, resultShape(op));
  BroadcastMap map(x.shape(), out.shape());
  ElementCopier copy(x, out);
  for (int64_t o = 0, n = out.numel(); o < n; ++o)
    copy(map(o), o);
  return out;
}

/// Where a pad reads index `s` (outside [0, n)) from, or -1 for the fill.
int64_t padSource(StringRef mode, int64_t s, int64_t n) {
  if (s >= 0 && s < n)
    return s;
  if (mode == "edge")
    return s < 0 ? 0 : n - 1;
  if (mode == "wrap")
    return ((s % n) + n) % n;
  if (mode == "reflect") {
    if (n == 1)
      return 0;
    int64_t period = 2 * (n - 1);
    s = ((s % period) + period) % period;
    return s < n ? s : period - s;
  }
  return -1;
}

FailureOr<Tensor> pad(Operation *op, ArrayRef<Tensor> in,
                      const EvalContext &ctx) {
  auto p = cast<nn::PadOp>(op);
  ArrayRef<int64_t> low = p.getLow();
  StringRef mode = p.getMode();
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor x = asStorage(in[0], dtype);
  Tensor fill = in.size() > 1 ? asStorage(in[1], dtype) : Tensor(dtype, {1});
  Tensor out(dtype, resultShape(op));
  std::vector<int64_t> inStrides = stridesOf(x.shape()), idx;
  ElementCopier copy(x, out), copyFill(fill, out);
  for (int64_t o = 0, n = out.numel(); o < n; ++o) {
    unravel(o, out.shape(), idx);
    int64_t src = 0;
    bool filled = false;
    for (size_t d = 0; d < idx.size() && !filled; ++d) {
      int64_t s = padSource(mode, idx[d] - low[d], x.shape()[d]);
      filled = s < 0;
      src += s * inStrides[d];
    }
    if (filled)
      copyFill(0, o);
    else
      copy(src, o);
  }
  return out;
}

FailureOr<Tensor> trilu(Operation *op, ArrayRef<Tensor> in,
                        const EvalContext &ctx) {
  auto t = cast<nn::TriluOp>(op);
  bool upper = t.getUpper();
  int64_t k = t.getK();
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor x = asStorage(in[0], dtype);
  Tensor out(dtype, resultShape(op)); // zero-initialised
  int64_t rows = x.shape()[x.rank() - 2], cols = x.shape().back();
  ElementCopier copy(x, out);
  for (int64_t o = 0, n = out.numel(); o < n; ++o) {
    int64_t j = o % cols, i = (o / cols) % rows;
    if (upper ? j - i >= k : j - i <= k)
      copy(o, o);
  }
  return out;
}

FailureOr<Tensor> cumsum(Operation *op, ArrayRef<Tensor> in,
                         const EvalContext &ctx) {
  auto c = cast<nn::CumSumOp>(op);
  int64_t axis = c.getAxis();
  bool exclusive = c.getExclusive(), reverse = c.getReverse();
  DType dtype = ctx.storageType(op->getResult(0));
  const Tensor &x = in[0];
  Tensor out(dtype, resultShape(op));
  ArrayRef<int64_t> shape = x.shape();
  int64_t outer = product(shape.take_front(axis));
  int64_t dim = shape.empty() ? 1 : shape[axis];
  int64_t inner =
      product(shape.drop_front(std::min<size_t>(axis + 1, shape.size())));
  bool isInt = !isFloat(dtype);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double sum = 0;
      int64_t isum = 0;
      for (int64_t s = 0; s < dim; ++s) {
        int64_t a = reverse ? dim - 1 - s : s;
        int64_t at = (o * dim + a) * inner + i;
        if (isInt) {
          int64_t v = x.getInt(at);
          out.setInt(at, exclusive ? isum : isum + v);
          isum += v;
        } else {
          double v = x.getDouble(at);
          out.setDouble(at, exclusive ? sum : sum + v);
          sum += v;
        }
      }
    }
  return out;
}

/// out[at] = reduce(out[at], updates[from]) for a scatter `reduction`.
void scatterOne(StringRef reduction, Tensor &out, int64_t at,
                const Tensor &updates, int64_t from) {
  if (!isFloat(out.dtype())) {
    int64_t a = out.getInt(at), u = updates.getInt(from), r = u;
    if (reduction == "add")
      r = a + u;
    else if (reduction == "mul")
      r = a * u;
    else if (reduction == "max")
      r = std::max(a, u);
    else if (reduction == "min")
      r = std::min(a, u);
    out.setInt(at, r);
    return;
  }
  double a = out.getDouble(at), u = updates.getDouble(from), r = u;
  if (reduction == "add")
    r = a + u;
  else if (reduction == "mul")
    r = a * u;
  else if (reduction == "max")
    r = std::max(a, u);
  else if (reduction == "min")
    r = std::min(a, u);
  out.setDouble(at, r);
}

FailureOr<Tensor> scatterElements(Operation *op, ArrayRef<Tensor> in,
                                  const EvalContext &ctx) {
  auto s = cast<nn::ScatterElementsOp>(op);
  int64_t axis = s.getAxis();
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor out = asStorage(in[0], dtype);
  out.mutableBytes(); // own the copy we write into
  const Tensor &indices = in[1];
  Tensor updates = asStorage(in[2], dtype);
  std::vector<int64_t> outStrides = stridesOf(out.shape()), idx;
  for (int64_t p = 0, n = indices.numel(); p < n; ++p) {
    unravel(p, indices.shape(), idx);
    FailureOr<int64_t> i = wrapIndex(op, indices.getInt(p), out.shape()[axis]);
    if (failed(i))
      return failure();
    idx[axis] = *i;
    int64_t at = 0;
    for (size_t d = 0; d < idx.size(); ++d) {
      if (idx[d] >= out.shape()[d])
        return op->emitError("indices shape ")
               << shapeToString(indices.shape()) << " reaches past data shape "
               << shapeToString(out.shape());
      at += idx[d] * outStrides[d];
    }
    scatterOne(s.getReduction(), out, at, updates, p);
  }
  return out;
}

FailureOr<Tensor> scatterND(Operation *op, ArrayRef<Tensor> in,
                            const EvalContext &ctx) {
  StringRef reduction = cast<nn::ScatterNDOp>(op).getReduction();
  DType dtype = ctx.storageType(op->getResult(0));
  Tensor out = asStorage(in[0], dtype);
  out.mutableBytes(); // own the copy we write into
  const Tensor &indices = in[1];
  Tensor updates = asStorage(in[2], dtype);
  int64_t k = indices.shape().back();
  int64_t tuples = indices.numel() / std::max<int64_t>(k, 1);
  int64_t inner = product(ArrayRef<int64_t>(out.shape()).drop_front(k));
  std::vector<int64_t> outStrides = stridesOf(out.shape());
  for (int64_t t = 0; t < tuples; ++t) {
    FailureOr<int64_t> offset =
        tupleOffset(op, out, indices, t, k, 0, outStrides);
    if (failed(offset))
      return failure();
    for (int64_t e = 0; e < inner; ++e)
      scatterOne(reduction, out, *offset + e, updates, t * inner + e);
  }
  return out;
}

FailureOr<Tensor> oneHot(Operation *op, ArrayRef<Tensor> in,
                         const EvalContext &ctx) {
  auto h = cast<nn::OneHotOp>(op);
  int64_t depth = h.getDepth(), axis = h.getAxis();
  DType dtype = ctx.storageType(op->getResult(0));
  const Tensor &indices = in[0];
  Tensor values = asStorage(in[1], dtype);
  Tensor out(dtype, resultShape(op));
  ArrayRef<int64_t> is = indices.shape();
  int64_t outer = product(is.take_front(axis)),
          inner = product(is.drop_front(axis));
  ElementCopier copy(values, out);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t index = indices.getInt(o * inner + i);
      if (index < 0)
        index += depth;
      for (int64_t d = 0; d < depth; ++d)
        copy(d == index ? 1 : 0, (o * depth + d) * inner + i);
    }
  return out;
}

} // namespace

void registerShapeKernels(KernelRegistry &r) {
  r.add("nn.reshape",
        singleResult([](Operation *op, ArrayRef<Tensor> in,
                        const EvalContext &ctx) -> FailureOr<Tensor> {
          return asStorage(in[0], ctx.storageType(op->getResult(0)))
              .reshaped(resultShape(op));
        }));
  r.add("nn.transpose", singleResult(transpose));
  r.add("nn.slice", singleResult(slice));
  r.add("nn.concat", singleResult(concat));
  r.add("nn.gather", singleResult(gather));
  r.add("nn.gather_elements", singleResult(gatherElements));
  r.add("nn.gather_nd", singleResult(gatherND));
  r.add("nn.broadcast_to", singleResult(broadcastTo));
  r.add("nn.pad", singleResult(pad));
  r.add("nn.trilu", singleResult(trilu));
  r.add("nn.cumsum", singleResult(cumsum));
  r.add("nn.scatter_elements", singleResult(scatterElements));
  r.add("nn.scatter_nd", singleResult(scatterND));
  r.add("nn.one_hot", singleResult(oneHot));
}

} // namespace peft::ref
