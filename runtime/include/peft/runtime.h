// The public C++ API of peftrt: load a program compiled by peftc, run its
// train / eval / optimizer steps, read and write parameters, save and load
// adapters in Hugging Face PEFT's layout. No LLVM, MLIR or protobuf.
#pragma once

#include "peft/KernelABI.h"
#include "peft/Program.h"
#include "peft/Tensor.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace peft::rt {

/// A decoded, validated program and the kernels it launches.
class Program {
public:
  /// The program linked into the running executable (what `peftc -o
  /// trainer` produces); null with an error when there is none.
  static std::shared_ptr<const Program> linked(std::string &error);
  /// A shared object written by `peftc --emit=shared -o prog.so`.
  static std::shared_ptr<const Program> loadShared(const std::string &path,
                                                   std::string &error);
  /// From encoded bytes and a kernel table (tests, JIT-compiled kernels).
  static std::shared_ptr<const Program>
  fromParts(std::string bytes, std::vector<peft_kernel_entry> kernels,
            std::string &error);

  const program::Program &ir() const { return ir_; }
  /// Kernel `index` of ir().kernels, resolved by symbol at load.
  peft_kernel_fn kernel(uint32_t index) const { return fns_[index]; }

  ~Program();

private:
  Program() = default;
  program::Program ir_;
  std::vector<peft_kernel_fn> fns_;
  void *handle_ = nullptr; // dlopen handle of loadShared
};

struct Options {
  /// OpenMP threads for kernels and oneDNN (0: omp_get_max_threads()).
  int threads = 0;
  /// Base weights file; empty: the program's weights_path.
  std::string weightsPath;
  /// trainStep copies the trainable params and optimizer state before the
  /// step when they total at most this many bytes (LoRA: a few MB), and
  /// restores them when the loss or gradient norm is NaN/Inf. Above it (full
  /// fine-tuning) no copy is kept: the step stops before its first write to
  /// a param (a Copy or Gemm into param storage), where the loss and
  /// gradient norm are normally known, and fails without restoring when
  /// they only turn non-finite later.
  uint64_t snapshotLimitBytes = uint64_t(256) << 20;
};

struct ParamInfo {
  std::string name;
  DType dtype;
  Shape shape;
  bool trainable;
  std::string peftKey;   // "" when not part of the saved adapter
  std::string stateOf;   // optimizer state: the param it belongs to
  std::string stateName; // "exp_avg", "exp_avg_sq", "momentum_buffer"
};

struct StepMetrics {
  double loss = 0, gradNorm = 0, lr = 0;
};

/// What a session holds, against what the process measured: the plan is the
/// arena plus everything the session owns plus the mapped weights.
struct MemoryUse {
  uint64_t arena = 0;  // the memory plan's arena
  uint64_t owned = 0;  // trainable params, optimizer state, constants,
                       // gradient sums, the NaN snapshot
  uint64_t mapped = 0; // frozen weights read from mapped files
  uint64_t planned() const { return arena + owned + mapped; }
  /// From /proc/self/status (0 where unknown): RSS and its file-backed part
  /// when create() began, the process's peak RSS and file-backed RSS now.
  uint64_t rssAtCreate = 0, fileRssAtCreate = 0;
  uint64_t peakRss = 0, fileRss = 0;
  /// Library code paged in since create() (oneDNN's kernels on first use):
  /// file-backed pages beyond the mapped weights. Not the session's data.
  uint64_t libraryPages() const {
    uint64_t file = fileRss > fileRssAtCreate ? fileRss - fileRssAtCreate : 0;
    return file > mapped ? file - mapped : 0;
  }
  /// Peak RSS grown since create(), less library code: what the session's
  /// data cost in fact, to compare with planned().
  uint64_t grown() const {
    uint64_t g = peakRss > rssAtCreate ? peakRss - rssAtCreate : 0;
    return g > libraryPages() ? g - libraryPages() : 0;
  }
};

/// Named graph inputs of one optimizer step: each tensor holds
/// `micro_batches x batch` rows along axis 0 (gradient accumulation
/// splits them), or one micro-batch when accumulation is 1.
using Batch = std::map<std::string, Tensor>;

/// Executes a program: maps the frozen weights (never copies them),
/// initialises the trainable params and optimizer state, allocates the arena
/// of the memory plan and creates every oneDNN primitive once.
class Session {
public:
  static std::unique_ptr<Session> create(std::shared_ptr<const Program> program,
                                         const Options &options,
                                         std::string &error);
  ~Session();

  /// One optimizer step (`step` counts from 1): every micro-batch through
  /// train_step, then apply_update when the program accumulates gradients.
  /// Fails (error names the step) on a shape/dtype mismatch or a NaN/Inf
  /// loss or gradient norm; params are then left as before the step.
  bool trainStep(const Batch &batch, int64_t step, StepMetrics &metrics,
                 std::string &error);
  /// The loss on one micro-batch without updating anything.
  bool evalLoss(const Batch &batch, double &loss, std::string &error);
  /// Runs any function of the program with inputs by argument name; the
  /// step counter argument (if any) is `step`.
  bool run(const std::string &function, const Batch &inputs, int64_t step,
           std::vector<Tensor> &results, std::string &error);

  std::vector<ParamInfo> params() const;
  /// A copy of a param's current value.
  bool getParam(const std::string &name, Tensor &out, std::string &error) const;
  /// The storage a param's buffers point at: for a frozen param read from
  /// the weights file, an address inside the file's read-only mapping.
  /// Null when there is no such param.
  const void *paramData(const std::string &name) const;
  /// Overwrites a trainable param or optimizer state (dtype/shape checked).
  bool setParam(const std::string &name, const Tensor &value,
                std::string &error);

  /// adapter_config.json + adapter_model.safetensors with PEFT's keys,
  /// written atomically into `dir` (created if needed); the tensors alone
  /// when the program carries no config (ReFT, saved by pyreft's keys).
  /// Results with a peft_key are computed by running their function (a
  /// projected prefix's prompt_embeddings, the encoder's output), which
  /// uses the arena as scratch: not concurrently with another call.
  bool saveAdapter(const std::string &dir, std::string &error) const;
  /// What loadAdapter does with a tensor that a function computes from the
  /// params (a projected prefix's prompt_embeddings): an adapter given to
  /// start from is refused, since the params cannot be recovered from it;
  /// a checkpoint's is skipped, its params being in optimizer.safetensors.
  enum class ComputedTensors { Reject, Skip };
  /// Loads PEFT-layout adapter weights into the matching params. A frozen
  /// param with a key (sparse fine-tuning's indices) is checked, not
  /// loaded: the file must hold the values the program was compiled with.
  bool loadAdapter(const std::string &dir, std::string &error,
                   ComputedTensors computed = ComputedTensors::Reject);

  int threads() const;
  /// The memory plan's arena, as allocated.
  uint64_t arenaBytes() const;
  /// Planned bytes and the process's measured peak (Linux /proc).
  MemoryUse memoryUse() const;
  const Program &program() const;

private:
  Session() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace peft::rt
