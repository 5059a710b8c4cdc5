// The CPU executor. Everything a step needs is prepared at load: every
// buffer's address (params, the arena, constants, views), every kernel's
// argument array and thread count, every oneDNN primitive. A step then only
// copies its inputs in, runs its steps in order and reads its results.
#include "Gemm.h"
#include "Parallel.h"

#include "peft/AtomicFile.h"
#include "peft/SafeTensors.h"
#include "peft/runtime.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <unordered_map>

namespace peft::rt {

namespace {

using program::Buffer;
using program::Param;
using program::Step;

constexpr size_t kAlignment = 64;

struct FreeDeleter {
  void operator()(uint8_t *p) const { std::free(p); }
};
using Block = std::unique_ptr<uint8_t, FreeDeleter>;

/// Zeroed storage aligned to `alignment` (at least 64 bytes, never null).
Block allocate(uint64_t bytes, uint64_t alignment = kAlignment) {
  alignment = std::max<uint64_t>(alignment, kAlignment);
  uint64_t size = std::max<uint64_t>(alignment, (bytes + alignment - 1) /
                                                    alignment * alignment);
  auto *p = static_cast<uint8_t *>(std::aligned_alloc(alignment, size));
  if (p)
    std::memset(p, 0, size);
  return Block(p);
}

/// A "VmRSS:"/"VmHWM:" line of /proc/self/status in bytes; 0 where the
/// file does not exist (not Linux).
uint64_t procStatusBytes(const char *key) {
  std::FILE *f = std::fopen("/proc/self/status", "r");
  if (!f)
    return 0;
  char line[256];
  uint64_t kb = 0;
  size_t keyLength = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, keyLength) == 0) {
      kb = std::strtoull(line + keyLength, nullptr, 10);
      break;
    }
  std::fclose(f);
  return kb * 1024;
}

void fillOnes(uint8_t *p, DType t, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    switch (t) {
    case DType::Bool:
    case DType::I8:
    case DType::U8:
      p[i] = 1;
      break;
    case DType::I32: {
      int32_t one = 1;
      std::memcpy(p + 4 * i, &one, 4);
      break;
    }
    case DType::I64: {
      int64_t one = 1;
      std::memcpy(p + 8 * i, &one, 8);
      break;
    }
    case DType::F16: {
      uint16_t one = 0x3C00;
      std::memcpy(p + 2 * i, &one, 2);
      break;
    }
    case DType::BF16: {
      uint16_t one = 0x3F80;
      std::memcpy(p + 2 * i, &one, 2);
      break;
    }
    case DType::F32: {
      float one = 1;
      std::memcpy(p + 4 * i, &one, 4);
      break;
    }
    case DType::F64: {
      double one = 1;
      std::memcpy(p + 8 * i, &one, 8);
      break;
    }
    }
}

/// A scalar metric as double (first element of the buffer).
double readScalar(const uint8_t *p, DType t) {
  switch (t) {
  case DType::F32: {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  case DType::F64: {
    double v;
    std::memcpy(&v, p, 8);
    return v;
  }
  case DType::F16: {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return halfToFloat(v);
  }
  case DType::BF16: {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return bf16ToFloat(v);
  }
  case DType::I32: {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  case DType::I64: {
    int64_t v;
    std::memcpy(&v, p, 8);
    return (double)v;
  }
  default:
    return p[0];
  }
}

/// out = in^T for a [rows, cols] matrix of `elem`-byte elements.
void transpose(const uint8_t *in, uint8_t *out, int64_t rows, int64_t cols,
               size_t elem) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      std::memcpy(out + (j * rows + i) * elem, in + (i * cols + j) * elem,
                  elem);
}

std::string stepName(int64_t step) { return "step " + std::to_string(step); }

} // namespace

struct Session::Impl {
  struct LaunchExec {
    peft_kernel_fn fn;
    std::vector<void *> args;
    int64_t extent;
    int threads;
  };
  struct Exec {
    Step::Kind kind;
    LaunchExec launch;
    std::unique_ptr<GemmOp> gemm;
    const uint8_t *copySrc = nullptr;
    uint8_t *copyDst = nullptr;
    uint64_t copyBytes = 0;
  };
  struct Fn {
    const program::Function *f = nullptr;
    std::vector<Exec> steps;
    /// Index of the first step that writes param storage (steps.size() if
    /// none): where the deferred NaN check runs without a snapshot.
    size_t firstParamWrite = 0;
    int metric(const std::string &name) const {
      for (size_t i = 0; i < f->results.size(); ++i)
        if (f->results[i].metric == name)
          return (int)i;
      return -1;
    }
  };

  std::shared_ptr<const Program> program;
  const program::Program *ir = nullptr;
  Options options;
  int threads = 1;

  std::unordered_map<std::string, std::shared_ptr<MappedFile>> files;
  Block arena;
  std::vector<Block> owned;
  std::vector<uint8_t *> paramPtr;
  /// Bytes of `owned` blocks (params, optimizer state, constants) and of the
  /// frozen params read from mapped files.
  uint64_t ownedBytes = 0, mappedBytes = 0;
  uint64_t rssAtCreate = 0, fileRssAtCreate = 0;
  /// Params a step may write: trainable ones, optimizer state, and any
  /// destination of a Copy/Gemm. Frozen mapped params are read-only memory.
  std::vector<bool> paramMutable;
  uint64_t mutableBytes = 0;
  std::vector<uint8_t *> bufferPtr;
  std::unordered_map<std::string, Fn> functions;

  // Gradient accumulation (train_step returns gradients, apply_update
  // takes their sums).
  std::vector<size_t> gradResults; // train_step results with no metric
  std::vector<size_t> updateArgs;  // apply_update's non-step args
  std::vector<Block> gradSums;

  std::vector<std::vector<uint8_t>> snapshot;

  const Buffer &buffer(uint32_t i) const { return ir->buffers[i]; }
  /// The buffer a chain of views ends in.
  const Buffer &root(uint32_t i) const {
    while (ir->buffers[i].kind == Buffer::Kind::View)
      i = ir->buffers[i].base;
    return ir->buffers[i];
  }
  uint64_t paramBytes(size_t i) const {
    const Param &p = ir->params[i];
    return (uint64_t)numElements(p.shape) * dtypeSize(p.dtype);
  }

  bool resolveFile(const Param &p, std::string &path, std::string &error) {
    std::string weights =
        options.weightsPath.empty() ? ir->weightsPath : options.weightsPath;
    if (p.file.empty() || p.file == ir->weightsPath)
      path = weights;
    else if (p.file[0] == '/')
      path = p.file;
    else
      path = (std::filesystem::path(weights).parent_path() / p.file).string();
    if (path.empty()) {
      error = "param '" + p.name +
              "' is read from the weights file, but neither the program nor "
              "the options name one";
      return false;
    }
    return true;
  }

  bool mapParam(size_t i, std::string &error) {
    const Param &p = ir->params[i];
    uint64_t bytes = paramBytes(i);
    paramMutable[i] = p.trainable || !p.stateOf.empty();
    const uint8_t *source = nullptr;
    if (p.init == Param::Init::File) {
      std::string path;
      if (!resolveFile(p, path, error))
        return false;
      auto &file = files[path];
      if (!file && !(file = MappedFile::open(path, error))) {
        error = "param '" + p.name + "': " + error;
        return false;
      }
      if (p.fileOffset > file->size() ||
          p.fileLength > file->size() - p.fileOffset) {
        error = "param '" + p.name + "': bytes [" +
                std::to_string(p.fileOffset) + ", +" +
                std::to_string(p.fileLength) + ") lie outside '" + path +
                "' (" + std::to_string(file->size()) + " bytes)";
        return false;
      }
      source = file->data() + p.fileOffset;
      if (!paramMutable[i]) {
        // Frozen: the mapping itself is the param (read-only pages).
        paramPtr[i] = const_cast<uint8_t *>(source);
        mappedBytes += bytes;
        return true;
      }
    } else if (p.init == Param::Init::Data) {
      source =
          reinterpret_cast<const uint8_t *>(ir->initData.data()) + p.dataOffset;
    }
    Block block = allocate(bytes);
    if (!block) {
      error = "param '" + p.name + "': cannot allocate " +
              std::to_string(bytes) + " bytes";
      return false;
    }
    if (source)
      std::memcpy(block.get(), source, bytes);
    else if (p.init == Param::Init::Ones)
      fillOnes(block.get(), p.dtype, numElements(p.shape));
    paramPtr[i] = block.get();
    ownedBytes += bytes;
    owned.push_back(std::move(block));
    return true;
  }

  bool resolveBuffers(std::string &error) {
    bufferPtr.assign(ir->buffers.size(), nullptr);
    arena = allocate(ir->arenaBytes, ir->arenaAlignment);
    if (!arena) {
      error = "cannot allocate the arena (" + std::to_string(ir->arenaBytes) +
              " bytes)";
      return false;
    }
    // Views may name later buffers as their base, so resolve on demand.
    std::vector<char> state(ir->buffers.size(), 0);
    std::function<uint8_t *(uint32_t)> resolve = [&](uint32_t i) -> uint8_t * {
      if (state[i])
        return bufferPtr[i];
      const Buffer &b = ir->buffers[i];
      uint8_t *p = nullptr;
      switch (b.kind) {
      case Buffer::Kind::Arena:
        p = arena.get() + b.offset;
        break;
      case Buffer::Kind::Param:
        p = paramPtr[b.param];
        break;
      case Buffer::Kind::Constant: {
        Block block = allocate(b.bytes);
        if (block) {
          std::memcpy(block.get(), b.constant.data(), b.bytes);
          p = block.get();
          ownedBytes += b.bytes;
          owned.push_back(std::move(block));
        }
        break;
      }
      case Buffer::Kind::View: {
        uint8_t *base = resolve(b.base);
        p = base ? base + b.offset : nullptr;
        break;
      }
      }
      state[i] = 1;
      return bufferPtr[i] = p;
    };
    for (uint32_t i = 0; i < ir->buffers.size(); ++i)
      if (!resolve(i)) {
        error = "buffers[" + std::to_string(i) + "] ('" + ir->buffers[i].name +
                "'): cannot allocate";
        return false;
      }
    return true;
  }

  bool writesParam(uint32_t bufferIndex) const {
    return root(bufferIndex).kind == Buffer::Kind::Param;
  }

  bool prepare(const program::Function &f, std::string &error) {
    Fn fn;
    fn.f = &f;
    fn.firstParamWrite = f.steps.size();
    for (size_t a = 0; a < f.args.size(); ++a) {
      Buffer::Kind kind = root(f.args[a].buffer).kind;
      if (kind != Buffer::Kind::Arena) {
        error = "function '" + f.name + "' argument " + std::to_string(a) +
                " ('" + f.args[a].name +
                "') is not an arena buffer, so inputs cannot be bound to it";
        return false;
      }
    }
    for (size_t s = 0; s < f.steps.size(); ++s) {
      const Step &step = f.steps[s];
      Exec e;
      e.kind = step.kind;
      bool writes = false;
      switch (step.kind) {
      case Step::Kind::Launch: {
        const program::Launch &l = step.launch;
        e.launch.fn = program->kernel(l.kernel);
        e.launch.extent = l.extent;
        uint64_t touched = 0;
        for (uint32_t a : l.args) {
          e.launch.args.push_back(bufferPtr[a]);
          touched += buffer(a).bytes;
        }
        e.launch.threads = threadsFor(l.extent, touched, threads);
        break;
      }
      case Step::Kind::Gemm: {
        const program::Gemm &g = step.gemm;
        std::string why;
        e.gemm =
            GemmOp::create(g, bufferPtr[g.a], bufferPtr[g.b], bufferPtr[g.c],
                           g.hasBias ? bufferPtr[g.bias] : nullptr,
                           g.hasBias ? buffer(g.bias).dtype : DType::F32, why);
        if (!e.gemm) {
          error = "function '" + f.name + "' steps[" + std::to_string(s) +
                  "]: " + why;
          return false;
        }
        writes = writesParam(g.c);
        break;
      }
      case Step::Kind::Copy:
        e.copySrc = bufferPtr[step.copy.src];
        e.copyDst = bufferPtr[step.copy.dst];
        e.copyBytes = buffer(step.copy.dst).bytes;
        writes = writesParam(step.copy.dst);
        break;
      }
      if (writes) {
        const Buffer &r =
            root(step.kind == Step::Kind::Gemm ? step.gemm.c : step.copy.dst);
        if (!paramMutable[r.param]) {
          if (ir->params[r.param].init == Param::Init::File) {
            error = "function '" + f.name + "' steps[" + std::to_string(s) +
                    "] writes frozen param '" + ir->params[r.param].name +
                    "', which is mapped read-only";
            return false;
          }
          paramMutable[r.param] = true;
        }
        fn.firstParamWrite = std::min(fn.firstParamWrite, s);
      }
      fn.steps.push_back(std::move(e));
    }
    functions.emplace(f.name, std::move(fn));
    return true;
  }

  bool prepareAccumulation(std::string &error) {
    auto train = functions.find("train_step");
    auto update = functions.find("apply_update");
    if (update == functions.end())
      return true;
    if (train == functions.end()) {
      error = "the program has apply_update but no train_step";
      return false;
    }
    const program::Function &t = *train->second.f, &u = *update->second.f;
    for (size_t r = 0; r < t.results.size(); ++r)
      if (t.results[r].metric.empty())
        gradResults.push_back(r);
    for (size_t a = 0; a < u.args.size(); ++a)
      if (!u.args[a].isStep)
        updateArgs.push_back(a);
    if (gradResults.size() != updateArgs.size()) {
      error = "train_step returns " + std::to_string(gradResults.size()) +
              " gradients, but apply_update takes " +
              std::to_string(updateArgs.size());
      return false;
    }
    for (size_t g = 0; g < gradResults.size(); ++g) {
      const Buffer &from = buffer(t.results[gradResults[g]].buffer);
      const Buffer &to = buffer(u.args[updateArgs[g]].buffer);
      if (from.dtype != to.dtype || from.shape != to.shape) {
        error = "gradient " + std::to_string(g) + " of train_step is " +
                std::string(dtypeName(from.dtype)) + " " +
                shapeToString(from.shape) + ", apply_update's argument '" +
                u.args[updateArgs[g]].name + "' is " +
                std::string(dtypeName(to.dtype)) + " " +
                shapeToString(to.shape);
        return false;
      }
      if (from.dtype != DType::F32 && from.dtype != DType::F64) {
        error = "gradient accumulation supports f32 and f64 gradients, not " +
                std::string(dtypeName(from.dtype));
        return false;
      }
      Block sum = allocate(from.bytes);
      if (!sum) {
        error = "cannot allocate gradient sums";
        return false;
      }
      ownedBytes += from.bytes;
      gradSums.push_back(std::move(sum));
    }
    return true;
  }

  bool execute(const Fn &fn, size_t begin, size_t end, std::string &error) {
    for (size_t s = begin; s < end; ++s) {
      const Exec &e = fn.steps[s];
      switch (e.kind) {
      case Step::Kind::Launch:
        parallelFor(
            e.launch.extent, e.launch.threads,
            [](int64_t b, int64_t en, void *ctx) {
              const LaunchExec &l = *static_cast<const LaunchExec *>(ctx);
              l.fn(l.args.data(), b, en);
            },
            const_cast<LaunchExec *>(&e.launch));
        break;
      case Step::Kind::Gemm:
        if (!e.gemm->run(error)) {
          error = "function '" + fn.f->name + "' steps[" + std::to_string(s) +
                  "]: " + error;
          return false;
        }
        break;
      case Step::Kind::Copy:
        if (e.copyBytes)
          std::memmove(e.copyDst, e.copySrc, e.copyBytes);
        break;
      }
    }
    return true;
  }

  /// Inputs without rows along axis 0 (scalars) are not split.
  static bool batched(const Buffer &b) {
    return !b.shape.empty() && b.shape[0] != 0;
  }

  /// How many micro-batches `inputs` hold for `fn` (rows along axis 0 per
  /// compiled batch), checking dtype and the non-batch dims.
  bool countMicroBatches(const Fn &fn, const Batch &inputs, int64_t &micros,
                         std::string &error) const {
    micros = -1;
    for (const program::Arg &arg : fn.f->args) {
      if (arg.isStep)
        continue;
      auto it = inputs.find(arg.name);
      if (it == inputs.end()) {
        error = "function '" + fn.f->name + "' needs input '" + arg.name + "'";
        return false;
      }
      const Tensor &t = it->second;
      const Buffer &b = buffer(arg.buffer);
      std::string want =
          std::string(dtypeName(b.dtype)) + " " + shapeToString(b.shape);
      auto mismatch = [&](const std::string &why) {
        error = "input '" + arg.name + "' is " +
                std::string(dtypeName(t.dtype())) + " " +
                shapeToString(t.shape()) + ", the program expects " + want +
                why;
        return false;
      };
      if (t.dtype() != b.dtype)
        return mismatch("");
      if (!t.valid())
        return mismatch(" (the tensor has no data)");
      int64_t n = 1;
      if (!batched(b) || t.shape().empty()) {
        if (t.shape() != b.shape)
          return mismatch("");
      } else {
        if (t.rank() != (int64_t)b.shape.size() ||
            !std::equal(b.shape.begin() + 1, b.shape.end(),
                        t.shape().begin() + 1) ||
            t.shape()[0] % b.shape[0] != 0 || t.shape()[0] == 0)
          return mismatch(" (or a multiple of it along axis 0)");
        n = t.shape()[0] / b.shape[0];
      }
      if (!batched(b))
        continue; // one value shared by every micro-batch
      if (micros >= 0 && n != micros) {
        error = "input '" + arg.name + "' holds " + std::to_string(n) +
                " micro-batches, other inputs " + std::to_string(micros);
        return false;
      }
      micros = n;
      if (arg.indexLimit > 0)
        for (int64_t i = 0, e = t.numel(); i < e; ++i) {
          int64_t id = t.getInt(i);
          if (id < 0 || id >= arg.indexLimit) {
            // A gather kernel would read outside its table.
            error = "input '" + arg.name + "' element " + std::to_string(i) +
                    " is " + std::to_string(id) + ", outside [0, " +
                    std::to_string(arg.indexLimit) +
                    "): it indexes a table of " +
                    std::to_string(arg.indexLimit) + " rows";
            return false;
          }
        }
    }
    if (micros < 0)
      micros = 1;
    return true;
  }

  /// Copies micro-batch `micro` of every input (and the step counter) into
  /// the function's argument buffers; countMicroBatches checked them.
  void bind(const Fn &fn, const Batch &inputs, int64_t step, int64_t micro) {
    for (const program::Arg &arg : fn.f->args) {
      uint8_t *dst = bufferPtr[arg.buffer];
      const Buffer &b = buffer(arg.buffer);
      if (arg.isStep) {
        std::memcpy(dst, &step, 8);
        continue;
      }
      const Tensor &t = inputs.at(arg.name);
      uint64_t offset = batched(b) ? micro * b.bytes : 0;
      if (b.bytes)
        std::memcpy(dst, t.bytes() + offset, b.bytes);
    }
  }

  double metric(const Fn &fn, int index) const {
    const Buffer &b = buffer(fn.f->results[index].buffer);
    return readScalar(bufferPtr[fn.f->results[index].buffer], b.dtype);
  }

  void saveSnapshot() {
    snapshot.resize(ir->params.size());
    for (size_t i = 0; i < ir->params.size(); ++i)
      if (paramMutable[i])
        snapshot[i].assign(paramPtr[i], paramPtr[i] + paramBytes(i));
  }
  void restoreSnapshot() {
    for (size_t i = 0; i < ir->params.size(); ++i)
      if (paramMutable[i] && !snapshot[i].empty())
        std::memcpy(paramPtr[i], snapshot[i].data(), paramBytes(i));
  }

  /// Runs `fn`, whose result metrics `checked` must be finite. With a
  /// snapshot the whole function runs and a failure restores it; without,
  /// the check runs before the first param write as well as at the end.
  bool runChecked(const Fn &fn,
                  const std::vector<std::pair<int, const char *>> &checked,
                  bool haveSnapshot, int64_t step, std::string &error) {
    auto nonFinite = [&](std::string &what) {
      for (auto [index, name] : checked) {
        if (index < 0)
          continue;
        double v = metric(fn, index);
        if (!std::isfinite(v)) {
          what = std::string(name) + " is " + std::to_string(v);
          return true;
        }
      }
      return false;
    };
    std::string what;
    size_t cut = haveSnapshot ? fn.steps.size() : fn.firstParamWrite;
    if (!execute(fn, 0, cut, error))
      return false;
    if (!haveSnapshot && nonFinite(what)) {
      error = stepName(step) + ": " + what + "; params left as before the step";
      return false;
    }
    if (!execute(fn, cut, fn.steps.size(), error))
      return false;
    if (nonFinite(what)) {
      if (haveSnapshot) {
        restoreSnapshot();
        error =
            stepName(step) + ": " + what + "; params left as before the step";
      } else {
        error = stepName(step) + ": " + what +
                " (found after the params were written: no snapshot is kept "
                "above Options::snapshotLimitBytes)";
      }
      return false;
    }
    return true;
  }
};

Session::~Session() = default;

std::unique_ptr<Session> Session::create(std::shared_ptr<const Program> program,
                                         const Options &options,
                                         std::string &error) {
  if (!program) {
    error = "no program";
    return nullptr;
  }
  std::unique_ptr<Session> session(new Session());
  session->impl_ = std::make_unique<Impl>();
  Impl &s = *session->impl_;
  s.rssAtCreate = procStatusBytes("VmRSS:");
  s.fileRssAtCreate = procStatusBytes("RssFile:");
  s.program = std::move(program);
  s.ir = &s.program->ir();
  s.options = options;
  s.threads = options.threads > 0 ? options.threads : maxThreads();
  // Before any primitive is created: oneDNN sizes its blocking by it.
  setThreads(s.threads);

  const program::Program &ir = *s.ir;
  s.paramPtr.assign(ir.params.size(), nullptr);
  s.paramMutable.assign(ir.params.size(), false);
  for (size_t i = 0; i < ir.params.size(); ++i)
    if (!s.mapParam(i, error))
      return nullptr;
  if (!s.resolveBuffers(error))
    return nullptr;
  for (const program::Function &f : ir.functions)
    if (!s.prepare(f, error))
      return nullptr;
  if (!s.prepareAccumulation(error))
    return nullptr;
  for (size_t i = 0; i < ir.params.size(); ++i)
    if (s.paramMutable[i])
      s.mutableBytes += s.paramBytes(i);
  return session;
}

bool Session::trainStep(const Batch &batch, int64_t step, StepMetrics &metrics,
                        std::string &error) {
  Impl &s = *impl_;
  setThreads(s.threads);
  auto train = s.functions.find("train_step");
  if (train == s.functions.end()) {
    error = "the program has no train_step";
    return false;
  }
  const Impl::Fn &t = train->second;
  int64_t micros;
  if (!s.countMicroBatches(t, batch, micros, error)) {
    error = stepName(step) + ": " + error;
    return false;
  }
  auto update = s.functions.find("apply_update");
  bool accumulate = update != s.functions.end();
  if (!accumulate && micros != 1) {
    error = stepName(step) + ": the batch holds " + std::to_string(micros) +
            " micro-batches, but the program does not accumulate gradients";
    return false;
  }
  bool haveSnapshot = s.mutableBytes <= s.options.snapshotLimitBytes;
  if (haveSnapshot)
    s.saveSnapshot();
  int lossIndex = t.metric("loss");
  if (lossIndex < 0) {
    error = "train_step has no result with metric 'loss'";
    return false;
  }
  StepMetrics m;
  if (!accumulate) {
    s.bind(t, batch, step, 0);
    if (!s.runChecked(
            t, {{lossIndex, "loss"}, {t.metric("grad_norm"), "grad norm"}},
            haveSnapshot, step, error))
      return false;
    m.loss = s.metric(t, lossIndex);
    int g = t.metric("grad_norm"), lr = t.metric("lr");
    m.gradNorm = g >= 0 ? s.metric(t, g) : 0;
    m.lr = lr >= 0 ? s.metric(t, lr) : 0;
    metrics = m;
    return true;
  }

  // The accumulation contract of peft-optimizer: train_step returns one
  // micro-batch's loss and its gradients already divided by the number of
  // micro-batches; the runtime sums them and passes the sums to
  // apply_update, which returns the gradient norm and lr and writes the
  // params. The step's loss is the mean of the micro-batch losses.
  for (size_t g = 0; g < s.gradSums.size(); ++g)
    std::memset(s.gradSums[g].get(), 0,
                s.buffer(t.f->results[s.gradResults[g]].buffer).bytes);
  for (int64_t micro = 0; micro < micros; ++micro) {
    s.bind(t, batch, step, micro);
    if (!s.execute(t, 0, t.steps.size(), error)) {
      if (haveSnapshot)
        s.restoreSnapshot();
      return false;
    }
    double loss = s.metric(t, lossIndex);
    if (!std::isfinite(loss)) {
      if (haveSnapshot)
        s.restoreSnapshot();
      error = stepName(step) + ": loss of micro-batch " +
              std::to_string(micro) + " is " + std::to_string(loss) +
              "; params left as before the step";
      return false;
    }
    m.loss += loss / micros;
    for (size_t g = 0; g < s.gradSums.size(); ++g) {
      uint32_t from = t.f->results[s.gradResults[g]].buffer;
      const Buffer &b = s.buffer(from);
      int64_t n = numElements(b.shape);
      if (b.dtype == DType::F32) {
        auto *sum = reinterpret_cast<float *>(s.gradSums[g].get());
        auto *x = reinterpret_cast<const float *>(s.bufferPtr[from]);
        for (int64_t i = 0; i < n; ++i)
          sum[i] += x[i];
      } else {
        auto *sum = reinterpret_cast<double *>(s.gradSums[g].get());
        auto *x = reinterpret_cast<const double *>(s.bufferPtr[from]);
        for (int64_t i = 0; i < n; ++i)
          sum[i] += x[i];
      }
    }
  }
  const Impl::Fn &u = update->second;
  for (const program::Arg &arg : u.f->args)
    if (arg.isStep)
      std::memcpy(s.bufferPtr[arg.buffer], &step, 8);
  for (size_t g = 0; g < s.updateArgs.size(); ++g) {
    uint32_t to = u.f->args[s.updateArgs[g]].buffer;
    std::memcpy(s.bufferPtr[to], s.gradSums[g].get(), s.buffer(to).bytes);
  }
  int normIndex = u.metric("grad_norm");
  if (normIndex < 0) {
    // No norm to check: check the summed gradients themselves.
    for (size_t g = 0; g < s.gradSums.size(); ++g) {
      const Buffer &b = s.buffer(t.f->results[s.gradResults[g]].buffer);
      for (int64_t i = 0, n = numElements(b.shape); i < n; ++i) {
        double v =
            readScalar(s.gradSums[g].get() + i * dtypeSize(b.dtype), b.dtype);
        if (!std::isfinite(v)) {
          if (haveSnapshot)
            s.restoreSnapshot();
          error = stepName(step) + ": gradient '" +
                  t.f->results[s.gradResults[g]].name + "' is " +
                  std::to_string(v) + "; params left as before the step";
          return false;
        }
      }
    }
  }
  if (!s.runChecked(u, {{normIndex, "grad norm"}}, haveSnapshot, step, error))
    return false;
  m.gradNorm = normIndex >= 0 ? s.metric(u, normIndex) : 0;
  int lr = u.metric("lr");
  m.lr = lr >= 0 ? s.metric(u, lr) : 0;
  metrics = m;
  return true;
}

bool Session::evalLoss(const Batch &batch, double &loss, std::string &error) {
  Impl &s = *impl_;
  setThreads(s.threads);
  auto it = s.functions.find("loss");
  if (it == s.functions.end()) {
    error = "the program has no loss function";
    return false;
  }
  const Impl::Fn &fn = it->second;
  int64_t micros;
  if (!s.countMicroBatches(fn, batch, micros, error))
    return false;
  if (micros != 1) {
    error = "evalLoss takes one micro-batch; the inputs hold " +
            std::to_string(micros);
    return false;
  }
  int index = fn.metric("loss");
  if (index < 0 && fn.f->results.size() == 1)
    index = 0;
  if (index < 0) {
    error = "the loss function has no result with metric 'loss'";
    return false;
  }
  s.bind(fn, batch, 0, 0);
  if (!s.execute(fn, 0, fn.steps.size(), error))
    return false;
  loss = s.metric(fn, index);
  return true;
}

bool Session::run(const std::string &function, const Batch &inputs,
                  int64_t step, std::vector<Tensor> &results,
                  std::string &error) {
  Impl &s = *impl_;
  setThreads(s.threads);
  auto it = s.functions.find(function);
  if (it == s.functions.end()) {
    error = "the program has no function '" + function + "'";
    return false;
  }
  const Impl::Fn &fn = it->second;
  int64_t micros;
  if (!s.countMicroBatches(fn, inputs, micros, error))
    return false;
  if (micros != 1) {
    error =
        "run takes one micro-batch; the inputs hold " + std::to_string(micros);
    return false;
  }
  s.bind(fn, inputs, step, 0);
  if (!s.execute(fn, 0, fn.steps.size(), error))
    return false;
  results.clear();
  for (const program::Result &r : fn.f->results) {
    const Buffer &b = s.buffer(r.buffer);
    Tensor t(b.dtype, b.shape);
    if (b.bytes)
      std::memcpy(t.mutableBytes(), s.bufferPtr[r.buffer], b.bytes);
    results.push_back(std::move(t));
  }
  return true;
}

std::vector<ParamInfo> Session::params() const {
  std::vector<ParamInfo> out;
  for (const Param &p : impl_->ir->params)
    out.push_back({p.name, p.dtype, p.shape, p.trainable, p.peftKey, p.stateOf,
                   p.stateName});
  return out;
}

namespace {
int findParam(const program::Program &ir, const std::string &name) {
  for (size_t i = 0; i < ir.params.size(); ++i)
    if (ir.params[i].name == name)
      return (int)i;
  return -1;
}
} // namespace

bool Session::getParam(const std::string &name, Tensor &out,
                       std::string &error) const {
  const Impl &s = *impl_;
  int i = findParam(*s.ir, name);
  if (i < 0) {
    error = "no param named '" + name + "'";
    return false;
  }
  const Param &p = s.ir->params[i];
  Tensor t(p.dtype, p.shape);
  if (t.byteSize())
    std::memcpy(t.mutableBytes(), s.paramPtr[i], t.byteSize());
  out = std::move(t);
  return true;
}

const void *Session::paramData(const std::string &name) const {
  int i = findParam(*impl_->ir, name);
  return i < 0 ? nullptr : impl_->paramPtr[i];
}

bool Session::setParam(const std::string &name, const Tensor &value,
                       std::string &error) {
  Impl &s = *impl_;
  int i = findParam(*s.ir, name);
  if (i < 0) {
    error = "no param named '" + name + "'";
    return false;
  }
  const Param &p = s.ir->params[i];
  if (!s.paramMutable[i]) {
    error = "param '" + name + "' is frozen";
    return false;
  }
  if (value.dtype() != p.dtype || value.shape() != p.shape || !value.valid()) {
    error = "param '" + name + "' is " + std::string(dtypeName(p.dtype)) + " " +
            shapeToString(p.shape) + ", the value is " +
            std::string(dtypeName(value.dtype())) + " " +
            shapeToString(value.shape());
    return false;
  }
  if (value.byteSize())
    std::memcpy(s.paramPtr[i], value.bytes(), value.byteSize());
  return true;
}

bool Session::saveAdapter(const std::string &dir, std::string &error) const {
  // Running a saved function writes only arena scratch, which no step keeps
  // between calls: the session's state is unchanged.
  Impl &s = *impl_;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (size_t i = 0; i < s.ir->params.size(); ++i) {
    const Param &p = s.ir->params[i];
    if (p.peftKey.empty())
      continue;
    Shape shape = p.shape;
    if (p.keyTransposed)
      std::swap(shape[0], shape[1]);
    Tensor t(p.dtype, shape);
    if (p.keyTransposed)
      transpose(s.paramPtr[i], t.mutableBytes(), p.shape[0], p.shape[1],
                dtypeSize(p.dtype));
    else if (t.byteSize())
      std::memcpy(t.mutableBytes(), s.paramPtr[i], t.byteSize());
    tensors.emplace_back(p.peftKey, std::move(t));
  }
  // Tensors PEFT saves as computed from the trained params (a projected
  // prefix's prompt_embeddings): the functions that compute them.
  for (const program::Function &f : s.ir->functions) {
    bool saves = false;
    for (const program::Result &r : f.results)
      saves |= !r.peftKey.empty();
    if (!saves)
      continue;
    const Impl::Fn &fn = s.functions.at(f.name);
    setThreads(s.threads);
    if (!s.execute(fn, 0, fn.steps.size(), error)) {
      error = "saving the adapter: " + error;
      return false;
    }
    for (const program::Result &r : f.results) {
      if (r.peftKey.empty())
        continue;
      const Buffer &b = s.buffer(r.buffer);
      Tensor t(b.dtype, b.shape);
      if (b.bytes)
        std::memcpy(t.mutableBytes(), s.bufferPtr[r.buffer], b.bytes);
      tensors.emplace_back(r.peftKey, std::move(t));
    }
  }
  if (tensors.empty()) {
    error = "the program has no adapter params (no param has a peft_key)";
    return false;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    error = "cannot create '" + dir + "': " + ec.message();
    return false;
  }
  std::string base = (std::filesystem::path(dir) / "").string();
  // Methods PEFT has no config for (ReFT: pyreft's intervention keys) save
  // their tensors alone.
  return writeSafeTensors(base + "adapter_model.safetensors", tensors,
                          {{"format", "pt"}}, error) &&
         (s.ir->adapterConfigJson.empty() ||
          writeFileAtomic(base + "adapter_config.json", s.ir->adapterConfigJson,
                          error));
}

bool Session::loadAdapter(const std::string &dir, std::string &error,
                          ComputedTensors computed) {
  Impl &s = *impl_;
  std::string path =
      (std::filesystem::path(dir) / "adapter_model.safetensors").string();
  SafeTensorsFile file;
  if (!readSafeTensors(path, file, error))
    return false;
  // Check everything before writing anything, so a bad file changes nothing.
  std::vector<std::pair<size_t, Tensor>> staged;
  std::unordered_map<std::string, bool> used;
  for (size_t i = 0; i < s.ir->params.size(); ++i) {
    const Param &p = s.ir->params[i];
    if (p.peftKey.empty())
      continue;
    const Tensor *t = file.find(p.peftKey);
    if (!t) {
      error = "'" + path + "' has no tensor '" + p.peftKey + "' (param '" +
              p.name + "')";
      return false;
    }
    used[p.peftKey] = true;
    Shape want = p.shape;
    if (p.keyTransposed)
      std::swap(want[0], want[1]);
    if (t->shape() != want) {
      error = "'" + path + "': tensor '" + p.peftKey + "' is " +
              shapeToString(t->shape()) + ", param '" + p.name + "' needs " +
              shapeToString(want);
      return false;
    }
    if (t->dtype() != p.dtype && !(isFloat(t->dtype()) && isFloat(p.dtype))) {
      error = "'" + path + "': tensor '" + p.peftKey + "' is " +
              std::string(dtypeName(t->dtype())) + ", param '" + p.name +
              "' is " + std::string(dtypeName(p.dtype));
      return false;
    }
    Tensor value = t->dtype() == p.dtype ? *t : t->castTo(p.dtype);
    if (p.keyTransposed) {
      Tensor back(p.dtype, p.shape);
      transpose(value.bytes(), back.mutableBytes(), want[0], want[1],
                dtypeSize(p.dtype));
      value = std::move(back);
    }
    // A frozen param saved with the adapter (sparse fine-tuning's indices)
    // is part of the compiled program: the file must hold its values.
    if (!s.paramMutable[i]) {
      if (value.byteSize() &&
          std::memcmp(value.bytes(), s.paramPtr[i], value.byteSize()) != 0) {
        error = "'" + path + "': tensor '" + p.peftKey + "' differs from " +
                "frozen param '" + p.name +
                "' of the program (it was compiled for other values)";
        return false;
      }
      continue;
    }
    staged.emplace_back(i, std::move(value));
  }
  // Keys a function computes from the trained params (Result.peft_key).
  std::unordered_map<std::string, std::string> computedBy;
  for (const program::Function &f : s.ir->functions)
    for (const program::Result &r : f.results)
      if (!r.peftKey.empty())
        computedBy[r.peftKey] = f.name;
  for (const auto &[name, tensor] : file.tensors) {
    if (used.count(name))
      continue;
    auto by = computedBy.find(name);
    if (by == computedBy.end()) {
      error = "'" + path + "': tensor '" + name +
              "' matches no adapter param of the program";
      return false;
    }
    if (computed == ComputedTensors::Skip)
      continue;
    error = "'" + path + "': tensor '" + name +
            "' is an output of the program's function '" + by->second +
            "', not a param: PEFT saves a projected prefix as its encoder's "
            "output, and the encoder's weights it was computed from cannot "
            "be recovered from it. Resume from a checkpoint of this trainer "
            "(--resume), or give peftc --init-adapter the encoder's weights";
    return false;
  }
  for (const auto &[i, value] : staged)
    if (value.byteSize())
      std::memcpy(s.paramPtr[i], value.bytes(), value.byteSize());
  return true;
}

int Session::threads() const { return impl_->threads; }
uint64_t Session::arenaBytes() const { return impl_->ir->arenaBytes; }

MemoryUse Session::memoryUse() const {
  const Impl &s = *impl_;
  MemoryUse use;
  use.arena = s.ir->arenaBytes;
  use.owned = s.ownedBytes;
  for (const std::vector<uint8_t> &copy : s.snapshot)
    use.owned += copy.capacity();
  use.mapped = s.mappedBytes;
  use.rssAtCreate = s.rssAtCreate;
  use.fileRssAtCreate = s.fileRssAtCreate;
  use.peakRss = procStatusBytes("VmHWM:");
  use.fileRss = procStatusBytes("RssFile:");
  return use;
}
const Program &Session::program() const { return *impl_->program; }

} // namespace peft::rt
