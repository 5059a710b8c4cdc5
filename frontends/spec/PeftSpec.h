//===- PeftSpec.h - The declarative PEFT spec -------------------*- C++ -*-===//
//
// A PEFT spec says which parameter-efficient methods apply to a model and how
// it is trained. It is read from YAML or from a Hugging Face PEFT
// `adapter_config.json` (JSON is YAML), in PEFT's vocabulary, with PEFT's
// defaults. docs/spec.md documents every field.
//
// Two shapes are accepted:
//   - the flat PEFT form: one method, its fields at the top level next to
//     `peft_type` (an adapter_config.json is this form), plus `training:`;
//   - the list form: `methods:` (a list of such entries) plus `training:`.
// toJson() writes the list form with every default filled in; parsing that
// JSON gives the same spec back, which is how the spec travels inside the IR.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace peft::spec {

/// A position in the spec file (1-based line and column); invalid when the
/// value was not read from a file (a default).
struct SourceLoc {
  std::string file;
  unsigned line = 0;
  unsigned column = 0;

  bool isValid() const { return line != 0; }
  /// "file:line:col", or the file name alone without a position.
  std::string str() const;
};

/// A scalar with the place it was written, for errors found after parsing
/// (e.g. a target that matches no module of the model).
template <typename T> struct Located {
  T value{};
  SourceLoc loc;
};

/// Selects modules by path, as PEFT's `target_modules`/`exclude_modules` do:
/// a list matches a module whose path equals an entry or ends with
/// "." + entry; a string is a regular expression that must match the whole
/// path (Python's re.fullmatch); "all-linear" is every linear layer except the
/// output head.
struct ModuleSelector {
  enum class Kind { Unset, Names, Regex, AllLinear };
  Kind kind = Kind::Unset;
  std::vector<Located<std::string>> names; // Kind::Names
  std::string regex;                       // Kind::Regex
  SourceLoc loc;                           // the whole value

  bool isSet() const { return kind != Kind::Unset; }
};

/// One `rank_pattern`/`alpha_pattern` entry; the key is a regular expression
/// matched against a module path's dotted suffixes, entries tried in order.
struct PatternEntry {
  std::string pattern;
  double value = 0;
  SourceLoc loc;
};

enum class LoraBias { None, All, LoraOnly };
/// PEFT's init_lora_weights: true (A kaiming-uniform, B zeros), "gaussian"
/// (A normal(0, 1/r), B zeros), false (A and B both random; for debugging).
enum class LoraInit { Default, Gaussian, Random };

/// PEFT's LoraConfig (DoRA is LoRA with use_dora).
struct LoraConfig {
  int64_t r = 8;
  double loraAlpha = 8;
  double loraDropout = 0.0;
  ModuleSelector targetModules;
  ModuleSelector excludeModules;
  std::vector<int64_t> layersToTransform; // empty: every layer
  std::vector<std::string> layersPattern; // empty: PEFT's generic pattern
  std::vector<PatternEntry> rankPattern;
  std::vector<PatternEntry> alphaPattern;
  LoraBias bias = LoraBias::None;
  bool useRslora = false;
  bool useDora = false;
  bool fanInFanOut = false;
  LoraInit initLoraWeights = LoraInit::Default;
  std::vector<Located<std::string>> modulesToSave;
};

/// PEFT's IA3Config.
struct IA3Config {
  ModuleSelector targetModules;
  ModuleSelector excludeModules;
  ModuleSelector feedforwardModules;
  bool fanInFanOut = false;
  bool initIa3Weights = true;
  std::vector<Located<std::string>> modulesToSave;
};

/// BitFit: train biases only, all of them or those of the selected modules.
struct BitFitConfig {
  bool allBiases = true;
  ModuleSelector biases; // set when !allBiases (names or regex)
  std::vector<Located<std::string>> modulesToSave;
};

/// Train whole transformer layers (by index, or the last N), the rest frozen.
struct FreezeLayersConfig {
  std::vector<Located<int64_t>> trainableLayers;
  std::optional<Located<int64_t>> lastNLayers;
  std::vector<Located<std::string>> modulesToSave;
};

/// Full fine-tuning: every parameter trains (the baseline).
struct FullConfig {};

/// Which of pyreft's interventions a ReFT method applies (DESIGN.md "Method
/// semantics"): LOREFT is LoreftIntervention h + Rᵀ(Wh + b − Rh); NODIREFT
/// is NodireftIntervention h + W₂ᵀ(W₁h + b), the paper's DiReFT; DIREFT is
/// pyreft's own DireftIntervention h + Rᵀ(Wh + b) with R orthonormal.
enum class ReftIntervention { LoReFT, NoDiReFT, DiReFT };

/// pyreft's intervention config (pyreft/examples/loreft/train.py's options):
/// one intervention per chosen layer on the residual stream after it
/// (`block_output`), at the first/last positions of each example's prompt.
struct ReftConfig {
  ReftIntervention intervention = ReftIntervention::LoReFT;
  /// The decoder layers intervened on, in the order written; `all` when
  /// allLayers.
  std::vector<Located<int64_t>> layers;
  bool allLayers = false;
  SourceLoc layersLoc;
  /// "f<first>+l<last>", "f<first>" or "l<last>" (pyreft's `position`).
  int64_t firstN = 1;
  int64_t lastN = 1;
  int64_t lowRankDimension = 1;
  /// One intervention for the first and last positions of a layer, rather
  /// than one each (pyreft's --share_weights).
  bool shareWeights = false;
  /// Dropout on the intervention's output (pyreft's `dropout`).
  double dropout = 0.0;
  /// NODIREFT's proj_layer bias (pyreft's `add_bias`); counted, never read.
  bool addBias = false;
  /// The data input holding each example's prompt length ([batch], ints).
  std::string promptLengths = "prompt_lengths";
  /// Added to every position: pyreft's datasets prepend one pad token.
  int64_t positionOffset = 1;
  SourceLoc loc;
};

/// A bottleneck adapter as the `adapters` library (adapter-hub, v1.2)
/// configures one (its BnConfig; `seq_bn` = SeqBnConfig (Pfeiffer),
/// `double_seq_bn` = DoubleSeqBnConfig (Houlsby), `par_bn` = ParBnConfig).
/// In a pre-norm decoder layer with residual stream r and sublayer output m
/// (attention's o_proj, the FFN's down_proj), the library's LLaMA layers
/// compute, with A(x) = up(act(down(x))) and s the scaling:
///   sequential: x = original_ln_before ? m + r : m,
///               res = residual_before_ln == true ? m : x,
///               out = res + s·A(x) + (original_ln_after ? r : 0);
///   parallel:   out = m + s·A(r) + (original_ln_after ? r : 0).
struct BottleneckConfig {
  /// Which preset the entry started from ("seq_bn", "double_seq_bn",
  /// "par_bn"); the fields below hold its values unless overridden.
  std::string preset = "seq_bn";
  /// The adapter's name in the library's keys
  /// (`model.layers.0.output_adapters.adapters.<name>.adapter_up.weight`).
  std::string adapterName = "bottleneck";
  bool mhAdapter = false;    // after attention
  bool outputAdapter = true; // after the FFN
  bool isParallel = false;
  double reductionFactor = 16;
  /// relu, gelu (erf), gelu_new (tanh approximation), swish/silu, tanh,
  /// sigmoid, leakyrelu (slope 0.01), linear/identity.
  std::string nonLinearity = "relu";
  double scaling = 1.0;
  bool originalLnBefore = true;
  bool originalLnAfter = true;
  /// true, false or "post_add" (the library's Union[bool, str]).
  std::string residualBeforeLn = "true";
  /// "bert" (weights normal(0, 0.02), biases 0) or "mam_adapter" (down
  /// kaiming-uniform(a=√5), its bias 0, up weight and bias 0).
  std::string initWeights = "bert";
  std::vector<int64_t> leaveOut; // layers without adapters
  SourceLoc loc;
};

/// PEFT's PromptTuningConfig: `numVirtualTokens` trainable embeddings
/// prepended to every example (DESIGN.md "Method semantics").
struct PromptTuningConfig {
  int64_t numVirtualTokens = 0;
  /// RANDOM (normal(0, 1), nn.Embedding's init) or TEXT (rows of the word
  /// embedding for `initTokenIds`, repeated or cut to numVirtualTokens).
  bool initFromText = false;
  std::vector<int64_t> initTokenIds;
  /// token_dim as written (0: unset); checked against the embedding table.
  int64_t tokenDim = 0;
  SourceLoc loc;
};

/// PEFT's PrefixTuningConfig: per decoder layer, P trainable key and value
/// positions in front of the attention's own (DESIGN.md "Method
/// semantics"). Without projection the trainable table is
/// prompt_embeddings [P, num_layers * 2 * token_dim]; with
/// `prefixProjection` PEFT's PrefixEncoder computes it each step as
/// Linear(tanh(Linear(Embedding(P, token_dim)))) through
/// `encoderHiddenSize` features. token_dim is the key/value width (KV heads
/// x head size, PEFT's grouped-query rule). Fields PEFT fills from the model
/// (0: unset) are checked against it.
struct PrefixTuningConfig {
  int64_t numVirtualTokens = 0;
  bool prefixProjection = false;
  int64_t encoderHiddenSize = 0; // 0: token_dim, as PEFT defaults it
  int64_t tokenDim = 0;
  int64_t numLayers = 0;
  int64_t numAttentionHeads = 0;
  SourceLoc loc;
};

/// How a SPARSE method picks the entries of each targeted weight.
enum class SparseSelection { Magnitude, Random };

/// Sparse fine-tuning (DESIGN.md "Method semantics"): each targeted linear
/// weight W trains a delta on k = ceil(density * numel(W)) of its entries,
/// W_eff = W + scatter(indices, delta); the delta, its gradient and its
/// optimizer state hold k values. `magnitude` picks the k largest |W| (ties:
/// the lower flat index of PyTorch's [out, in] weight), `random` a seeded
/// draw of peftc's Philox generator (passes/InsertSparse.h).
struct SparseConfig {
  ModuleSelector targetModules;
  ModuleSelector excludeModules;
  double density = 0; // required: 0 < density <= 1
  SparseSelection selection = SparseSelection::Magnitude;
  int64_t seed = 42;
  SourceLoc loc;
};

/// Every method the spec can name. Those after Full are planned (see
/// docs/spec.md); naming them is an error until they get a config struct in
/// MethodConfig.
enum class MethodKind {
  Lora,
  IA3,
  BitFit,
  FreezeLayers,
  Full,
  LoReFT,
  DiReFT,
  NoDiReFT,
  PromptTuning,
  PrefixTuning,
  BottleneckAdapter,
  Sparse,
};

using MethodConfig =
    std::variant<LoraConfig, IA3Config, BitFitConfig, FreezeLayersConfig,
                 FullConfig, ReftConfig, BottleneckConfig, PromptTuningConfig,
                 SparseConfig, PrefixTuningConfig>;

struct MethodSpec {
  MethodKind kind = MethodKind::Lora;
  MethodConfig config;
  SourceLoc loc; // where the entry starts

  const LoraConfig *lora() const { return std::get_if<LoraConfig>(&config); }
  const IA3Config *ia3() const { return std::get_if<IA3Config>(&config); }
  const BitFitConfig *bitfit() const {
    return std::get_if<BitFitConfig>(&config);
  }
  const FreezeLayersConfig *freezeLayers() const {
    return std::get_if<FreezeLayersConfig>(&config);
  }
  const ReftConfig *reft() const { return std::get_if<ReftConfig>(&config); }
  const BottleneckConfig *bottleneck() const {
    return std::get_if<BottleneckConfig>(&config);
  }
  const PromptTuningConfig *promptTuning() const {
    return std::get_if<PromptTuningConfig>(&config);
  }
  const SparseConfig *sparse() const {
    return std::get_if<SparseConfig>(&config);
  }
  const PrefixTuningConfig *prefixTuning() const {
    return std::get_if<PrefixTuningConfig>(&config);
  }
};

struct InputShape {
  std::string name;
  std::vector<int64_t> dims;
  SourceLoc loc;
};

enum class LossKind { ModelOutput, CrossEntropy, Mse };
enum class LossShift { None, Causal };

struct LossSpec {
  /// Default: the causal-LM loss transformers computes when given labels.
  LossKind kind = LossKind::CrossEntropy;
  std::string output;            // ModelOutput: a scalar model output
  std::string logits = "logits"; // CrossEntropy: model output [.., C]
  std::string labels = "labels"; // CrossEntropy: data input of class ids
  LossShift shift = LossShift::Causal;
  int64_t ignoreIndex = -100;
  std::string prediction; // Mse: model output
  std::string target;     // Mse: data input
  SourceLoc loc;
};

enum class OptimizerKind { AdamW, Sgd };

/// Defaults are Hugging Face TrainingArguments' (lr 5e-5, betas
/// (0.9, 0.999), eps 1e-8, weight_decay 0).
struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::AdamW;
  double lr = 5e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 0.0;
  /// Parameters weight decay skips: `bias` (every bias), `norm` (weights of
  /// norm modules), or a regular expression searched in the parameter name.
  std::vector<std::string> noDecay = {"bias", "norm"};
  double momentum = 0.0; // SGD
  bool nesterov = false; // SGD
  SourceLoc loc;
};

enum class ScheduleKind { Constant, Linear, Cosine };

/// Learning-rate schedule, stepped per optimizer step (transformers'
/// get_{constant,linear,cosine}_schedule_with_warmup).
struct ScheduleSpec {
  ScheduleKind kind = ScheduleKind::Linear;
  std::optional<int64_t> warmupSteps;
  std::optional<double> warmupRatio;
  /// Unset: the number of steps the trainer is asked to run.
  std::optional<int64_t> totalSteps;
  double numCycles = 0.5; // cosine only
  SourceLoc loc;
};

struct TrainingSpec {
  std::vector<InputShape> inputs;
  LossSpec loss;
  OptimizerSpec optimizer;
  ScheduleSpec schedule;
  double maxGradNorm = 1.0; // 0 disables clipping
  int64_t gradientAccumulationSteps = 1;
  int64_t seed = 42;
  /// Unset: the leading dimension of the inputs.
  std::optional<int64_t> batchSize;
  bool shuffle = true;
  std::optional<int64_t> padTokenId;
};

struct PeftSpec {
  std::string sourceFile;
  std::vector<MethodSpec> methods;
  TrainingSpec training;
};

/// Prompt tuning's virtual tokens (0 without a PROMPT_TUNING method).
int64_t virtualTokenCount(const PeftSpec &spec);

/// The shape the model is imported with for data input `input`: the data's
/// own, except that prompt tuning prefixes `input_ids` and `attention_mask`
/// with the virtual tokens (axis 1 grows by virtualTokenCount), so the
/// graph's mask and position logic see T + P.
std::vector<int64_t> importShape(const PeftSpec &spec, const InputShape &input);

/// Reads a spec file (YAML or adapter_config.json). On failure returns false
/// and sets `error` to "file:line:col: error: ..." (plus "note:" lines).
bool parseSpecFile(const std::string &path, PeftSpec &spec, std::string &error);

/// The same, from text; `bufferName` stands for the file name in errors.
bool parseSpecString(llvm::StringRef text, llvm::StringRef bufferName,
                     PeftSpec &spec, std::string &error);

/// The spec with every default filled in, as list-form JSON that
/// parseSpecString reads back to an equal spec.
std::string toJson(const PeftSpec &spec);

/// PEFT's name for a method ("LORA", "IA3") or peftc's for the others
/// ("BITFIT", "FREEZE_LAYERS", "FULL", "LOREFT", ...).
llvm::StringRef methodName(MethodKind kind);

} // namespace peft::spec
