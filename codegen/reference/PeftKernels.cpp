//===- PeftKernels.cpp - adapters, losses and optimizer updates -----------===//
//
// The golden numerics of the peft ops: Hugging Face PEFT's adapter layers,
// PyTorch's losses, torch.optim's AdamW/SGD, clip_grad_norm_ and
// transformers' learning-rate schedules, each written in the order of
// operations of the code it mirrors so f64 runs agree with PyTorch in f64
// to the last few bits.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/peft/PeftOps.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace peft::ref {
namespace {

//===----------------------------------------------------------------------===//
// LoRA, DoRA, IA3
//===----------------------------------------------------------------------===//

/// The operands of peft.lora / peft.dora as matrices: `x` holds `rows` rows
/// of `in` features; W(i, o) reads the frozen weight in either layout.
struct LowRank {
  const Tensor &x, &w, &a, &b;
  /// The input of the low-rank path (dropout applied), or `x`.
  const Tensor &adapterX;
  bool outIn;
  int64_t in, out, r, rows;

  LowRank(const Tensor &x, const Tensor &w, const Tensor &a, const Tensor &b,
          const Tensor *adapterInput, bool outIn)
      : x(x), w(w), a(a), b(b), adapterX(adapterInput ? *adapterInput : x),
        outIn(outIn), in(a.shape()[1]), out(b.shape()[0]), r(a.shape()[0]),
        rows(x.numel() / std::max<int64_t>(in, 1)) {}

  double weight(int64_t i, int64_t o) const {
    return w.getDouble(outIn ? o * in + i : i * out + o);
  }
  /// (B·A)(o, i) = Σ_k B[o, k]·A[k, i]; used only for DoRA's norm.
  double loraWeight(int64_t o, int64_t i) const {
    double acc = 0;
    for (int64_t k = 0; k < r; ++k)
      acc += b.getDouble(o * r + k) * a.getDouble(k * in + i);
    return acc;
  }
  /// row of (input·W): base[o] = Σ_i input[row, i]·W(i, o).
  void baseRow(const Tensor &input, int64_t row,
               std::vector<double> &base) const {
    base.assign(out, 0.0);
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0;
      for (int64_t i = 0; i < in; ++i)
        acc += input.getDouble(row * in + i) * weight(i, o);
      base[o] = acc;
    }
  }
  /// row of (x̃·Aᵀ)·Bᵀ, through the r-wide intermediate (B·A never formed).
  void lowRankRow(int64_t row, std::vector<double> &lo) const {
    std::vector<double> t(r, 0.0);
    for (int64_t k = 0; k < r; ++k) {
      double acc = 0;
      for (int64_t i = 0; i < in; ++i)
        acc += adapterX.getDouble(row * in + i) * a.getDouble(k * in + i);
      t[k] = acc;
    }
    lo.assign(out, 0.0);
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0;
      for (int64_t k = 0; k < r; ++k)
        acc += t[k] * b.getDouble(o * r + k);
      lo[o] = acc;
    }
  }
};

/// y = x·W + (x̃·Aᵀ·Bᵀ)·scale, PEFT's `result + lora_B(lora_A(x)) * scaling`.
FailureOr<Tensor> lora(Operation *op, ArrayRef<Tensor> in,
                       const EvalContext &ctx) {
  auto loraOp = cast<pir::LoraOp>(op);
  double scale = loraOp.getScale().convertToDouble();
  const Tensor *adapterInput = loraOp.getAdapterInput() ? &in[4] : nullptr;
  LowRank v(in[0], in[1], in[2], in[3], adapterInput, loraOp.isWeightOutIn());
  Tensor y(ctx.storageType(op->getResult(0)), resultShape(op));
  std::vector<double> base, lo;
  for (int64_t row = 0; row < v.rows; ++row) {
    v.baseRow(v.x, row, base);
    v.lowRankRow(row, lo);
    for (int64_t o = 0; o < v.out; ++o)
      y.setDouble(row * v.out + o, base[o] + lo[o] * scale);
  }
  return y;
}

/// PEFT's DoraLinearLayer: n = ‖W + s·B·A‖ per output feature, c = m / n,
/// y = x·W + ((c − 1)·(x̃·W) + c·(x̃·Aᵀ·Bᵀ)·s).
FailureOr<Tensor> dora(Operation *op, ArrayRef<Tensor> in,
                       const EvalContext &ctx) {
  auto doraOp = cast<pir::DoraOp>(op);
  double scale = doraOp.getScale().convertToDouble();
  const Tensor &magnitude = in[4];
  const Tensor *adapterInput = doraOp.getAdapterInput() ? &in[5] : nullptr;
  LowRank v(in[0], in[1], in[2], in[3], adapterInput, doraOp.isWeightOutIn());

  std::vector<double> magNormScale(v.out);
  for (int64_t o = 0; o < v.out; ++o) {
    double sq = 0;
    for (int64_t i = 0; i < v.in; ++i) {
      double merged = v.weight(i, o) + scale * v.loraWeight(o, i);
      sq += merged * merged;
    }
    magNormScale[o] = magnitude.getDouble(o) / std::sqrt(sq);
  }

  Tensor y(ctx.storageType(op->getResult(0)), resultShape(op));
  std::vector<double> base, adapterBase, lo;
  for (int64_t row = 0; row < v.rows; ++row) {
    v.baseRow(v.x, row, base);
    if (adapterInput)
      v.baseRow(*adapterInput, row, adapterBase);
    const std::vector<double> &droppedBase = adapterInput ? adapterBase : base;
    v.lowRankRow(row, lo);
    for (int64_t o = 0; o < v.out; ++o) {
      double c = magNormScale[o];
      double dora = (c - 1) * droppedBase[o] + c * lo[o] * scale;
      y.setDouble(row * v.out + o, base[o] + dora);
    }
  }
  return y;
}

FailureOr<Tensor> ia3(Operation *op, ArrayRef<Tensor> in,
                      const EvalContext &ctx) {
  const Tensor &h = in[0], &l = in[1];
  int64_t features = l.numel();
  Tensor y(ctx.storageType(op->getResult(0)), h.shape());
  for (int64_t i = 0, n = h.numel(); i < n; ++i)
    y.setDouble(i, h.getDouble(i) * l.getDouble(i % features));
  return y;
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

/// Mean over non-ignored positions of −log_softmax(logits)[label], the way
/// nll_loss(log_softmax(x)) computes it: logp = (x − max) − log Σ exp(x − max).
FailureOr<Tensor> crossEntropy(Operation *op, ArrayRef<Tensor> in,
                               const EvalContext &ctx) {
  auto ce = cast<pir::CrossEntropyOp>(op);
  const Tensor &logits = in[0], &labels = in[1];
  int64_t vocab = logits.shape().back();
  int64_t positions = labels.numel();
  int64_t seqLen = labels.rank() ? labels.shape().back() : 1;
  int64_t ignoreIndex = ce.getIgnoredLabel();
  bool causal = ce.isCausal();

  double total = 0;
  int64_t count = 0;
  for (int64_t p = 0; p < positions; ++p) {
    // Causal: the logits at t predict the label at t + 1; the last position
    // of each sequence has no next label (Hugging Face pads it with
    // ignore_index).
    int64_t label = ignoreIndex;
    if (!causal)
      label = labels.getInt(p);
    else if (p % seqLen != seqLen - 1)
      label = labels.getInt(p + 1);
    if (label == ignoreIndex)
      continue;
    if (label < 0 || label >= vocab)
      return op->emitError("cross_entropy: label ")
             << label << " at position " << (causal ? p + 1 : p)
             << " is outside [0, " << vocab << ") and is not ignore_index ("
             << ignoreIndex << ")";
    const int64_t row = p * vocab;
    double rowMax = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < vocab; ++k)
      rowMax = std::max(rowMax, logits.getDouble(row + k));
    double sum = 0;
    for (int64_t k = 0; k < vocab; ++k)
      sum += std::exp(logits.getDouble(row + k) - rowMax);
    double logProb = (logits.getDouble(row + label) - rowMax) - std::log(sum);
    total += -logProb;
    ++count;
  }
  Tensor loss(ctx.storageType(op->getResult(0)), {});
  // No counted position: 0 / 0 = NaN, as PyTorch's mean reduction gives.
  loss.setDouble(0, total / (double)count);
  return loss;
}

FailureOr<Tensor> mse(Operation *op, ArrayRef<Tensor> in,
                      const EvalContext &ctx) {
  const Tensor &pred = in[0], &target = in[1];
  double sum = 0;
  for (int64_t i = 0, n = pred.numel(); i < n; ++i) {
    double d = pred.getDouble(i) - target.getDouble(i);
    sum += d * d;
  }
  Tensor loss(ctx.storageType(op->getResult(0)), {});
  loss.setDouble(0, sum / (double)pred.numel());
  return loss;
}

//===----------------------------------------------------------------------===//
// Optimizer updates
//===----------------------------------------------------------------------===//

/// Rounds a value as storing it in a tensor of `dtype` does: PyTorch's
/// optimizers update tensors in place, so each intermediate tensor is rounded
/// to the parameter's dtype (a no-op when the evaluator runs in f64).
class Rounder {
public:
  explicit Rounder(DType dtype) : scratch_(dtype, {1}) {}
  double operator()(double v) {
    scratch_.setDouble(0, v);
    return scratch_.getDouble(0);
  }

private:
  Tensor scratch_;
};

/// The 1-based optimizer step; the bias corrections and SGD's first-step
/// buffer initialisation need it to be >= 1.
FailureOr<int64_t> optimizerStep(Operation *op, const Tensor &step) {
  int64_t value = step.getInt(0);
  if (value < 1)
    return op->emitError(op->getName().getStringRef())
           << ": step must be >= 1 (steps count from 1), got " << value;
  return value;
}

/// torch.lerp as ATen's vectorised CPU kernel computes it: one fused
/// multiply-add, anchored at whichever end is nearer to the weight.
double lerp(double self, double end, double weight) {
  return std::abs(weight) < 0.5 ? std::fma(weight, end - self, self)
                                : std::fma(weight - 1, end - self, end);
}

/// torch.optim.AdamW, single-tensor path (_single_tensor_adam with
/// decoupled weight decay), statement by statement.
LogicalResult adamw(Operation *op, ArrayRef<Tensor> in,
                    SmallVectorImpl<Tensor> &out, const EvalContext &ctx) {
  auto adam = cast<pir::AdamWOp>(op);
  const Tensor &param = in[0], &grad = in[1], &expAvg = in[2],
               &expAvgSq = in[3];
  double lr = in[4].getDouble(0);
  FailureOr<int64_t> step = optimizerStep(op, in[5]);
  if (failed(step))
    return failure();
  double beta1 = adam.getBeta1().convertToDouble();
  double beta2 = adam.getBeta2().convertToDouble();
  double eps = adam.getEps().convertToDouble();
  double weightDecay = adam.getWeightDecay().convertToDouble();

  // Python floats: `1 - beta1 ** step`, `lr / bias_correction1`,
  // `bias_correction2 ** 0.5`.
  double biasCorrection1 = 1 - std::pow(beta1, (double)*step);
  double biasCorrection2 = 1 - std::pow(beta2, (double)*step);
  double stepSize = lr / biasCorrection1;
  double biasCorrection2Sqrt = std::pow(biasCorrection2, 0.5);

  DType dtype = ctx.storageType(op->getResult(0));
  Rounder round(dtype);
  Tensor newParam(dtype, param.shape()), newExpAvg(dtype, param.shape()),
      newExpAvgSq(dtype, param.shape());
  for (int64_t i = 0, n = param.numel(); i < n; ++i) {
    double p = param.getDouble(i), g = grad.getDouble(i);
    if (weightDecay != 0)
      p = round(p * (1 - lr * weightDecay));
    double m = round(lerp(expAvg.getDouble(i), g, 1 - beta1));
    double v = round(expAvgSq.getDouble(i) * beta2);
    v = round(v + (1 - beta2) * g * g);
    double denom =
        round(round(round(std::sqrt(v)) / biasCorrection2Sqrt) + eps);
    p = p + -stepSize * m / denom;
    newParam.setDouble(i, p);
    newExpAvg.setDouble(i, m);
    newExpAvgSq.setDouble(i, v);
  }
  out.push_back(std::move(newParam));
  out.push_back(std::move(newExpAvg));
  out.push_back(std::move(newExpAvgSq));
  return success();
}

/// torch.optim.SGD, single-tensor path (_single_tensor_sgd).
LogicalResult sgd(Operation *op, ArrayRef<Tensor> in,
                  SmallVectorImpl<Tensor> &out, const EvalContext &ctx) {
  auto sgdOp = cast<pir::SgdOp>(op);
  const Tensor &param = in[0], &grad = in[1], &buffer = in[2];
  double lr = in[3].getDouble(0);
  FailureOr<int64_t> step = optimizerStep(op, in[4]);
  if (failed(step))
    return failure();
  double momentum = sgdOp.getMomentum().convertToDouble();
  double dampening = sgdOp.getDampening().convertToDouble();
  double weightDecay = sgdOp.getWeightDecay().convertToDouble();
  bool nesterov = sgdOp.getNesterov();

  DType dtype = ctx.storageType(op->getResult(0));
  Rounder round(dtype);
  Tensor newParam(dtype, param.shape()), newBuffer(dtype, param.shape());
  for (int64_t i = 0, n = param.numel(); i < n; ++i) {
    double p = param.getDouble(i), g = grad.getDouble(i);
    double buf = buffer.getDouble(i);
    if (weightDecay != 0)
      g = round(g + weightDecay * p);
    if (momentum != 0) {
      // PyTorch has no buffer before the first step and clones the gradient.
      if (*step == 1) {
        buf = g;
      } else {
        buf = round(buf * momentum);
        buf = round(buf + (1 - dampening) * g);
      }
      g = nesterov ? round(g + momentum * buf) : buf;
    }
    newParam.setDouble(i, p + -lr * g);
    newBuffer.setDouble(i, buf);
  }
  out.push_back(std::move(newParam));
  out.push_back(std::move(newBuffer));
  return success();
}

/// torch.nn.utils.clip_grad_norm_ with norm_type 2: the norm of the stacked
/// per-tensor norms, then every gradient times min(max_norm / (total +
/// 1e-6), 1).
LogicalResult clipGradNorm(Operation *op, ArrayRef<Tensor> in,
                           SmallVectorImpl<Tensor> &out,
                           const EvalContext &ctx) {
  auto clip = cast<pir::ClipGradNormOp>(op);
  double maxNorm = clip.getMaxNorm().convertToDouble();
  DType dtype = ctx.storageType(clip.getTotalNorm());
  Rounder round(dtype);
  double sumOfSquaredNorms = 0;
  for (const Tensor &g : in) {
    double sq = 0;
    for (int64_t i = 0, n = g.numel(); i < n; ++i)
      sq += g.getDouble(i) * g.getDouble(i);
    double norm = round(std::sqrt(sq));
    sumOfSquaredNorms += norm * norm;
  }
  double total = round(std::sqrt(sumOfSquaredNorms));
  double coef = round(maxNorm / round(total + 1e-6));
  // torch.clamp(max=1.0) keeps NaN, so a non-finite norm poisons the grads.
  if (coef > 1.0)
    coef = 1.0;
  for (auto [g, result] : llvm::zip(in, op->getResults())) {
    Tensor clipped(ctx.storageType(result), g.shape());
    for (int64_t i = 0, n = g.numel(); i < n; ++i)
      clipped.setDouble(i, g.getDouble(i) * coef);
    out.push_back(std::move(clipped));
  }
  Tensor totalNorm(dtype, {});
  totalNorm.setDouble(0, total);
  out.push_back(std::move(totalNorm));
  return success();
}

/// transformers' get_{constant,linear,cosine}_schedule_with_warmup lambdas,
/// evaluated at k = step − 1 (LambdaLR is stepped after each optimizer step).
FailureOr<Tensor> lrSchedule(Operation *op, ArrayRef<Tensor> in,
                             const EvalContext &ctx) {
  auto schedule = cast<pir::LrScheduleOp>(op);
  FailureOr<int64_t> step = optimizerStep(op, in[0]);
  if (failed(step))
    return failure();
  int64_t k = *step - 1;
  int64_t warmup = schedule.getWarmup();
  int64_t total = schedule.getTotal();
  StringRef kind = schedule.getKind();
  double factor;
  if (k < warmup) {
    factor = (double)k / (double)std::max<int64_t>(1, warmup);
  } else if (kind == "constant") {
    factor = 1.0;
  } else if (kind == "linear") {
    factor = std::max(0.0, (double)(total - k) /
                               (double)std::max<int64_t>(1, total - warmup));
  } else {
    double progress =
        (double)(k - warmup) / (double)std::max<int64_t>(1, total - warmup);
    double cycles = schedule.getNumCycles().convertToDouble();
    factor =
        std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * cycles * 2.0 * progress)));
  }
  Tensor lr(ctx.storageType(op->getResult(0)), {});
  lr.setDouble(0, schedule.getBaseLr().convertToDouble() * factor);
  return lr;
}

} // namespace

void registerPeftKernels(KernelRegistry &r) {
  r.add("peft.lora", singleResult(lora));
  r.add("peft.dora", singleResult(dora));
  r.add("peft.ia3", singleResult(ia3));
  r.add("peft.cross_entropy", singleResult(crossEntropy));
  r.add("peft.mse", singleResult(mse));
  r.add("peft.adamw", adamw);
  r.add("peft.sgd", sgd);
  r.add("peft.clip_grad_norm", clipGradNorm);
  r.add("peft.lr_schedule", singleResult(lrSchedule));
}

} // namespace peft::ref
