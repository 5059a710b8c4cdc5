// Reading specs: every field, PEFT's defaults, adapter_config.json files as
// PEFT writes them, the JSON round trip, and error messages with positions.
#include "frontends/spec/PeftSpec.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace peft::spec;

namespace {

PeftSpec parseOk(llvm::StringRef text) {
  PeftSpec spec;
  std::string error;
  EXPECT_TRUE(parseSpecString(text, "spec.yaml", spec, error)) << error;
  return spec;
}

std::string parseError(llvm::StringRef text) {
  PeftSpec spec;
  std::string error;
  EXPECT_FALSE(parseSpecString(text, "spec.yaml", spec, error));
  return error;
}

std::vector<std::string> names(const ModuleSelector &selector) {
  std::vector<std::string> result;
  for (const auto &name : selector.names)
    result.push_back(name.value);
  return result;
}

std::vector<std::string> names(const std::vector<Located<std::string>> &list) {
  std::vector<std::string> result;
  for (const auto &name : list)
    result.push_back(name.value);
  return result;
}

using Strings = std::vector<std::string>;

TEST(SpecParser, LoraEveryField) {
  PeftSpec spec = parseOk(R"(
peft_type: LORA
r: 16
lora_alpha: 32
lora_dropout: 0.1
target_modules: [q_proj, v_proj]
exclude_modules: [lm_head]
layers_to_transform: [0, 1]
layers_pattern: layers
rank_pattern: {q_proj: 4, "model.layers.1.self_attn.v_proj": 2}
alpha_pattern: {v_proj: 64.5}
bias: lora_only
use_rslora: true
use_dora: true
init_lora_weights: gaussian
fan_in_fan_out: true
modules_to_save: [score]
)");
  ASSERT_EQ(spec.methods.size(), 1u);
  EXPECT_EQ(spec.methods[0].kind, MethodKind::Lora);
  const LoraConfig *lora = spec.methods[0].lora();
  ASSERT_TRUE(lora);
  EXPECT_EQ(lora->r, 16);
  EXPECT_EQ(lora->loraAlpha, 32);
  EXPECT_EQ(lora->loraDropout, 0.1);
  EXPECT_EQ(lora->targetModules.kind, ModuleSelector::Kind::Names);
  EXPECT_EQ(names(lora->targetModules), (Strings{"q_proj", "v_proj"}));
  EXPECT_EQ(lora->targetModules.names[1].loc.str(), "spec.yaml:6:26");
  EXPECT_EQ(names(lora->excludeModules), (Strings{"lm_head"}));
  EXPECT_EQ(lora->layersToTransform, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(lora->layersPattern, (Strings{"layers"}));
  ASSERT_EQ(lora->rankPattern.size(), 2u);
  EXPECT_EQ(lora->rankPattern[0].pattern, "q_proj");
  EXPECT_EQ(lora->rankPattern[0].value, 4);
  EXPECT_EQ(lora->rankPattern[1].pattern, "model.layers.1.self_attn.v_proj");
  EXPECT_EQ(lora->rankPattern[1].value, 2);
  ASSERT_EQ(lora->alphaPattern.size(), 1u);
  EXPECT_EQ(lora->alphaPattern[0].value, 64.5);
  EXPECT_EQ(lora->bias, LoraBias::LoraOnly);
  EXPECT_TRUE(lora->useRslora);
  EXPECT_TRUE(lora->useDora);
  EXPECT_EQ(lora->initLoraWeights, LoraInit::Gaussian);
  EXPECT_TRUE(lora->fanInFanOut);
  EXPECT_EQ(names(lora->modulesToSave), (Strings{"score"}));
}

TEST(SpecParser, LoraDefaultsArePefts) {
  PeftSpec spec = parseOk("peft_type: LORA\ntarget_modules: [q_proj]\n");
  const LoraConfig *lora = spec.methods[0].lora();
  ASSERT_TRUE(lora);
  EXPECT_EQ(lora->r, 8);
  EXPECT_EQ(lora->loraAlpha, 8); // PEFT's default when lora_alpha is missing
  EXPECT_EQ(lora->loraDropout, 0.0);
  EXPECT_FALSE(lora->excludeModules.isSet());
  EXPECT_TRUE(lora->layersToTransform.empty());
  EXPECT_TRUE(lora->layersPattern.empty());
  EXPECT_TRUE(lora->rankPattern.empty());
  EXPECT_TRUE(lora->alphaPattern.empty());
  EXPECT_EQ(lora->bias, LoraBias::None);
  EXPECT_FALSE(lora->useRslora);
  EXPECT_FALSE(lora->useDora);
  EXPECT_EQ(lora->initLoraWeights, LoraInit::Default);
  EXPECT_FALSE(lora->fanInFanOut);
  EXPECT_TRUE(lora->modulesToSave.empty());
}

TEST(SpecParser, TrainingDefaultsAreTrainers) {
  PeftSpec spec = parseOk("peft_type: LORA\ntarget_modules: [q_proj]\n");
  const TrainingSpec &t = spec.training;
  EXPECT_TRUE(t.inputs.empty());
  EXPECT_EQ(t.loss.kind, LossKind::CrossEntropy);
  EXPECT_EQ(t.loss.logits, "logits");
  EXPECT_EQ(t.loss.labels, "labels");
  EXPECT_EQ(t.loss.shift, LossShift::Causal);
  EXPECT_EQ(t.loss.ignoreIndex, -100);
  EXPECT_EQ(t.optimizer.kind, OptimizerKind::AdamW);
  EXPECT_EQ(t.optimizer.lr, 5e-5);
  EXPECT_EQ(t.optimizer.beta1, 0.9);
  EXPECT_EQ(t.optimizer.beta2, 0.999);
  EXPECT_EQ(t.optimizer.eps, 1e-8);
  EXPECT_EQ(t.optimizer.weightDecay, 0.0);
  EXPECT_EQ(t.optimizer.noDecay, (Strings{"bias", "norm"}));
  EXPECT_EQ(t.schedule.kind, ScheduleKind::Linear);
  EXPECT_EQ(t.schedule.warmupSteps, std::optional<int64_t>(0));
  EXPECT_FALSE(t.schedule.warmupRatio);
  EXPECT_FALSE(t.schedule.totalSteps);
  EXPECT_EQ(t.maxGradNorm, 1.0);
  EXPECT_EQ(t.gradientAccumulationSteps, 1);
  EXPECT_EQ(t.seed, 42);
  EXPECT_FALSE(t.batchSize);
  EXPECT_TRUE(t.shuffle);
  EXPECT_FALSE(t.padTokenId);
}

TEST(SpecParser, TargetModuleForms) {
  const LoraConfig *lora;
  PeftSpec regex =
      parseOk("peft_type: LORA\ntarget_modules: '.*\\.(q|v)_proj'\n");
  lora = regex.methods[0].lora();
  EXPECT_EQ(lora->targetModules.kind, ModuleSelector::Kind::Regex);
  EXPECT_EQ(lora->targetModules.regex, ".*\\.(q|v)_proj");

  PeftSpec allLinear = parseOk("peft_type: LORA\ntarget_modules: ALL-LINEAR\n");
  EXPECT_EQ(allLinear.methods[0].lora()->targetModules.kind,
            ModuleSelector::Kind::AllLinear);

  PeftSpec oneLayer = parseOk(
      "peft_type: lora\ntarget_modules: [q_proj]\nlayers_to_transform: 3\n"
      "layers_pattern: [layers, h]\n");
  lora = oneLayer.methods[0].lora();
  EXPECT_EQ(lora->layersToTransform, (std::vector<int64_t>{3}));
  EXPECT_EQ(lora->layersPattern, (Strings{"layers", "h"}));

  PeftSpec randomInit = parseOk(
      "peft_type: LORA\ntarget_modules: [q]\ninit_lora_weights: false\n");
  EXPECT_EQ(randomInit.methods[0].lora()->initLoraWeights, LoraInit::Random);
}

TEST(SpecParser, PeftLoraAdapterConfig) {
  // adapter_config.json as PEFT 0.19 writes it (keys sorted, every field).
  PeftSpec spec = parseOk(R"({
  "alora_invocation_tokens": null,
  "alpha_pattern": {},
  "arrow_config": null,
  "auto_mapping": null,
  "base_model_name_or_path": "meta-llama/Llama-3.2-1B",
  "bias": "none",
  "corda_config": null,
  "ensure_weight_tying": false,
  "eva_config": null,
  "exclude_modules": null,
  "fan_in_fan_out": false,
  "inference_mode": true,
  "init_lora_weights": true,
  "layer_replication": null,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 32,
  "lora_bias": false,
  "lora_dropout": 0.05,
  "lora_ga_config": null,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": null,
  "peft_type": "LORA",
  "peft_version": "0.19.1",
  "qalora_group_size": 16,
  "r": 16,
  "rank_pattern": {},
  "revision": null,
  "target_modules": [
    "v_proj",
    "q_proj"
  ],
  "target_parameters": null,
  "task_type": "CAUSAL_LM",
  "trainable_token_indices": null,
  "use_bdlora": null,
  "use_dora": false,
  "use_qalora": false,
  "use_rslora": false
})");
  ASSERT_EQ(spec.methods.size(), 1u);
  const LoraConfig *lora = spec.methods[0].lora();
  ASSERT_TRUE(lora);
  EXPECT_EQ(lora->r, 16);
  EXPECT_EQ(lora->loraAlpha, 32);
  EXPECT_EQ(lora->loraDropout, 0.05);
  EXPECT_EQ(names(lora->targetModules), (Strings{"v_proj", "q_proj"}));
  EXPECT_FALSE(lora->useDora);
  EXPECT_EQ(lora->targetModules.names[0].loc.str(), "spec.yaml:33:5");
}

TEST(SpecParser, PeftDoraAdapterConfig) {
  // An older PEFT (0.10) DoRA config, on GPT-2's fused Conv1D.
  PeftSpec spec = parseOk(R"({
  "alpha_pattern": {},
  "auto_mapping": null,
  "base_model_name_or_path": "gpt2",
  "bias": "none",
  "fan_in_fan_out": true,
  "inference_mode": false,
  "init_lora_weights": true,
  "layer_replication": null,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 16,
  "lora_dropout": 0.0,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": null,
  "peft_type": "LORA",
  "r": 4,
  "rank_pattern": {},
  "revision": null,
  "target_modules": ["c_attn"],
  "task_type": "CAUSAL_LM",
  "use_dora": true,
  "use_rslora": false
})");
  const LoraConfig *lora = spec.methods[0].lora();
  ASSERT_TRUE(lora);
  EXPECT_TRUE(lora->useDora);
  EXPECT_TRUE(lora->fanInFanOut);
  EXPECT_EQ(lora->r, 4);
  EXPECT_EQ(lora->loraAlpha, 16);
}

TEST(SpecParser, PeftIa3AdapterConfig) {
  PeftSpec spec = parseOk(R"({
  "auto_mapping": null,
  "base_model_name_or_path": "meta-llama/Llama-3.2-1B",
  "exclude_modules": null,
  "fan_in_fan_out": false,
  "feedforward_modules": ["down_proj"],
  "inference_mode": false,
  "init_ia3_weights": true,
  "modules_to_save": null,
  "peft_type": "IA3",
  "peft_version": "0.17.0",
  "revision": null,
  "target_modules": ["k_proj", "v_proj", "down_proj"],
  "task_type": "CAUSAL_LM"
})");
  ASSERT_EQ(spec.methods[0].kind, MethodKind::IA3);
  const IA3Config *ia3 = spec.methods[0].ia3();
  ASSERT_TRUE(ia3);
  EXPECT_EQ(names(ia3->targetModules),
            (Strings{"k_proj", "v_proj", "down_proj"}));
  EXPECT_EQ(names(ia3->feedforwardModules), (Strings{"down_proj"}));
  EXPECT_TRUE(ia3->initIa3Weights);
  EXPECT_FALSE(ia3->fanInFanOut);
}

TEST(SpecParser, Ia3EveryField) {
  PeftSpec spec = parseOk(R"(
peft_type: IA3
target_modules: '.*(k_proj|v_proj|down_proj)'
exclude_modules: '.*layers\.0\..*'
feedforward_modules: '.*down_proj'
fan_in_fan_out: true
init_ia3_weights: false
modules_to_save: [lm_head]
)");
  const IA3Config *ia3 = spec.methods[0].ia3();
  ASSERT_TRUE(ia3);
  EXPECT_EQ(ia3->targetModules.kind, ModuleSelector::Kind::Regex);
  EXPECT_EQ(ia3->excludeModules.regex, ".*layers\\.0\\..*");
  EXPECT_EQ(ia3->feedforwardModules.regex, ".*down_proj");
  EXPECT_TRUE(ia3->fanInFanOut);
  EXPECT_FALSE(ia3->initIa3Weights);
  EXPECT_EQ(names(ia3->modulesToSave), (Strings{"lm_head"}));
}

TEST(SpecParser, BitFitForms) {
  PeftSpec all = parseOk("peft_type: BITFIT\n");
  EXPECT_TRUE(all.methods[0].bitfit()->allBiases);
  PeftSpec allExplicit = parseOk("peft_type: bitfit\nbiases: all\n");
  EXPECT_TRUE(allExplicit.methods[0].bitfit()->allBiases);
  PeftSpec named =
      parseOk("peft_type: BITFIT\nbiases: [c_attn, c_fc]\nmodules_to_save: "
              "[lm_head]\n");
  const BitFitConfig *bitfit = named.methods[0].bitfit();
  EXPECT_FALSE(bitfit->allBiases);
  EXPECT_EQ(names(bitfit->biases), (Strings{"c_attn", "c_fc"}));
  EXPECT_EQ(names(bitfit->modulesToSave), (Strings{"lm_head"}));
  PeftSpec regex = parseOk("peft_type: BITFIT\nbiases: '.*attn.*'\n");
  EXPECT_EQ(regex.methods[0].bitfit()->biases.kind,
            ModuleSelector::Kind::Regex);
}

TEST(SpecParser, FreezeLayersAndFull) {
  PeftSpec lastN = parseOk("peft_type: freeze-layers\nlast_n_layers: 2\n");
  EXPECT_EQ(lastN.methods[0].kind, MethodKind::FreezeLayers);
  EXPECT_EQ(lastN.methods[0].freezeLayers()->lastNLayers->value, 2);
  PeftSpec named =
      parseOk("peft_type: FREEZE_LAYERS\ntrainable_layers: [0, 3]\n"
              "modules_to_save: [lm_head]\n");
  const FreezeLayersConfig *layers = named.methods[0].freezeLayers();
  ASSERT_EQ(layers->trainableLayers.size(), 2u);
  EXPECT_EQ(layers->trainableLayers[1].value, 3);
  EXPECT_FALSE(layers->lastNLayers);
  PeftSpec single = parseOk("peft_type: FREEZE_LAYERS\ntrainable_layers: 1\n");
  EXPECT_EQ(single.methods[0].freezeLayers()->trainableLayers[0].value, 1);
  PeftSpec full = parseOk("peft_type: FULL\n");
  EXPECT_EQ(full.methods[0].kind, MethodKind::Full);
}

TEST(SpecParser, MethodsCompose) {
  PeftSpec spec = parseOk(R"(
methods:
  - peft_type: LORA
    r: 4
    target_modules: [q_proj, v_proj]
    modules_to_save: [score]
  - peft_type: BITFIT
training:
  seed: 7
)");
  ASSERT_EQ(spec.methods.size(), 2u);
  EXPECT_EQ(spec.methods[0].kind, MethodKind::Lora);
  EXPECT_EQ(spec.methods[0].loc.str(), "spec.yaml:3:5");
  EXPECT_EQ(spec.methods[1].kind, MethodKind::BitFit);
  EXPECT_EQ(spec.methods[1].loc.str(), "spec.yaml:7:5");
  EXPECT_EQ(spec.training.seed, 7);
}

TEST(SpecParser, TrainingEveryField) {
  PeftSpec spec = parseOk(R"(
peft_type: LORA
target_modules: [q_proj]
training:
  inputs:
    input_ids: [4, 32]
    attention_mask: [4, 32]
    labels: [4, 32]
  loss: {type: cross_entropy, logits: out, labels: y, shift: none, ignore_index: -1}
  optimizer:
    type: adamw
    lr: 2e-4
    betas: [0.8, 0.95]
    eps: 1e-6
    weight_decay: 0.1
    no_decay: [bias, norm, 'embed_tokens']
  schedule: {type: cosine, warmup_ratio: 0.25, total_steps: 100, num_cycles: 1}
  max_grad_norm: 0.5
  gradient_accumulation_steps: 4
  seed: 1234
  batch_size: 4
  shuffle: false
  pad_token_id: 0
)");
  const TrainingSpec &t = spec.training;
  ASSERT_EQ(t.inputs.size(), 3u);
  EXPECT_EQ(t.inputs[0].name, "input_ids");
  EXPECT_EQ(t.inputs[0].dims, (std::vector<int64_t>{4, 32}));
  EXPECT_EQ(t.inputs[2].name, "labels");
  EXPECT_EQ(t.loss.kind, LossKind::CrossEntropy);
  EXPECT_EQ(t.loss.logits, "out");
  EXPECT_EQ(t.loss.labels, "y");
  EXPECT_EQ(t.loss.shift, LossShift::None);
  EXPECT_EQ(t.loss.ignoreIndex, -1);
  EXPECT_EQ(t.optimizer.lr, 2e-4);
  EXPECT_EQ(t.optimizer.beta1, 0.8);
  EXPECT_EQ(t.optimizer.beta2, 0.95);
  EXPECT_EQ(t.optimizer.eps, 1e-6);
  EXPECT_EQ(t.optimizer.weightDecay, 0.1);
  EXPECT_EQ(t.optimizer.noDecay, (Strings{"bias", "norm", "embed_tokens"}));
  EXPECT_EQ(t.schedule.kind, ScheduleKind::Cosine);
  EXPECT_EQ(t.schedule.warmupRatio, std::optional<double>(0.25));
  EXPECT_FALSE(t.schedule.warmupSteps);
  EXPECT_EQ(t.schedule.totalSteps, std::optional<int64_t>(100));
  EXPECT_EQ(t.schedule.numCycles, 1.0);
  EXPECT_EQ(t.maxGradNorm, 0.5);
  EXPECT_EQ(t.gradientAccumulationSteps, 4);
  EXPECT_EQ(t.seed, 1234);
  EXPECT_EQ(t.batchSize, std::optional<int64_t>(4));
  EXPECT_FALSE(t.shuffle);
  EXPECT_EQ(t.padTokenId, std::optional<int64_t>(0));
}

TEST(SpecParser, LossOptimizerScheduleForms) {
  PeftSpec output = parseOk(
      "peft_type: FULL\ntraining: {loss: loss, optimizer: sgd, schedule: "
      "constant}\n");
  EXPECT_EQ(output.training.loss.kind, LossKind::ModelOutput);
  EXPECT_EQ(output.training.loss.output, "loss");
  EXPECT_EQ(output.training.optimizer.kind, OptimizerKind::Sgd);
  EXPECT_EQ(output.training.schedule.kind, ScheduleKind::Constant);

  PeftSpec mse = parseOk(R"(
peft_type: FULL
training:
  loss: {type: mse, prediction: pooler_output, target: target}
  optimizer: {type: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01}
  schedule: {type: linear, warmup_steps: 3, total_steps: 10}
)");
  EXPECT_EQ(mse.training.loss.kind, LossKind::Mse);
  EXPECT_EQ(mse.training.loss.prediction, "pooler_output");
  EXPECT_EQ(mse.training.loss.target, "target");
  EXPECT_EQ(mse.training.optimizer.lr, 0.1);
  EXPECT_EQ(mse.training.optimizer.momentum, 0.9);
  EXPECT_TRUE(mse.training.optimizer.nesterov);
  EXPECT_EQ(mse.training.optimizer.weightDecay, 0.01);
  EXPECT_EQ(mse.training.schedule.warmupSteps, std::optional<int64_t>(3));

  PeftSpec named = parseOk(
      "peft_type: FULL\ntraining: {loss: {type: output, name: total_loss}}\n");
  EXPECT_EQ(named.training.loss.output, "total_loss");

  // The batch comes from the inputs when not given.
  PeftSpec batch =
      parseOk("peft_type: FULL\ntraining: {inputs: {input_ids: [3, 8]}}\n");
  EXPECT_EQ(batch.training.batchSize, std::optional<int64_t>(3));
}

TEST(SpecParser, JsonRoundTrip) {
  const char *specs[] = {
      "peft_type: LORA\ntarget_modules: [q_proj, v_proj]\n",
      R"(
methods:
  - peft_type: LORA
    r: 16
    lora_alpha: 0.1
    lora_dropout: 0.3
    target_modules: '.*\.(q|v)_proj'
    exclude_modules: [lm_head]
    rank_pattern: {'.*_proj': 2, q_proj: 4}
    alpha_pattern: {v_proj: 3.25}
    bias: all
    use_rslora: true
    use_dora: true
    init_lora_weights: false
    fan_in_fan_out: true
    modules_to_save: [score, classifier]
  - peft_type: IA3
    target_modules: [k_proj, down_proj]
    feedforward_modules: [down_proj]
    init_ia3_weights: false
  - {peft_type: BITFIT, biases: [c_attn]}
  - {peft_type: FREEZE_LAYERS, last_n_layers: 2, modules_to_save: [lm_head]}
  - {peft_type: FREEZE_LAYERS, trainable_layers: [0, 1]}
training:
  inputs: {input_ids: [2, 16], labels: [2, 16]}
  loss: {type: mse, prediction: p, target: t}
  optimizer: {type: sgd, lr: 0.3, momentum: 0.5, nesterov: true}
  schedule: {type: cosine, warmup_ratio: 0.1, num_cycles: 2}
  max_grad_norm: 0
  gradient_accumulation_steps: 2
  seed: 3
  shuffle: false
  pad_token_id: 2
)",
      ("peft_type: FULL\ntraining: {loss: out, optimizer: {lr: 1e-3, "
       "no_decay: []}, schedule: {type: constant, warmup_steps: 5}}\n"),
  };
  for (const char *text : specs) {
    PeftSpec spec = parseOk(text);
    std::string json = toJson(spec);
    PeftSpec again;
    std::string error;
    ASSERT_TRUE(parseSpecString(json, "peft.spec", again, error))
        << error << "\n"
        << json;
    EXPECT_EQ(toJson(again), json);
  }
}

TEST(SpecParser, JsonNumbersAreShortest) {
  PeftSpec spec = parseOk(
      "peft_type: FULL\ntraining: {optimizer: {lr: 0.0003, eps: 1e-08}}\n");
  std::string json = toJson(spec);
  EXPECT_NE(json.find("\"lr\": 0.0003"), std::string::npos) << json;
  EXPECT_NE(json.find("\"eps\": 1e-08"), std::string::npos) << json;
  EXPECT_NE(json.find("\"betas\": [\n"), std::string::npos) << json;
}

TEST(SpecParser, ErrorsCarryPositions) {
  EXPECT_EQ(parseError("peft_type: LORA\ntarget_modules: [q]\nlora_aplha: 4\n"),
            "spec.yaml:3:1: error: unknown key 'lora_aplha' in a LORA method; "
            "did you mean 'lora_alpha'?");
  EXPECT_EQ(parseError("peft_type: LORA\ntarget_modules: [q]\nr: -4\n"),
            "spec.yaml:3:4: error: 'r' must be a positive integer, got -4");
  EXPECT_EQ(parseError("peft_type: LORA\ntarget_modules: [q]\nr: \"8\"\n"),
            "spec.yaml:3:4: error: 'r' expects an integer, got the string "
            "\"8\"");
  EXPECT_EQ(parseError("peft_type: LORA\ntarget_modules: [q]\nbias: lora\n"),
            "spec.yaml:3:7: error: 'bias' expects one of 'none', 'all', "
            "'lora_only', got 'lora'; did you mean 'lora_only'?");
  EXPECT_EQ(parseError("peft_type: LOREFT\n"),
            "spec.yaml:1:1: error: a LOREFT method needs 'layers': 'all' or "
            "the indices of the decoder layers to intervene on");
  EXPECT_EQ(parseError("peft_type: ADALORA\n"),
            "spec.yaml:1:12: error: peft_type 'ADALORA' is a PEFT method "
            "peftc does not support yet; supported: 'LORA', 'IA3', 'BITFIT', "
            "'FREEZE_LAYERS', 'FULL', 'LOREFT', 'DIREFT', 'NODIREFT', "
            "'PROMPT_TUNING', 'BOTTLENECK', 'SEQ_BN', 'DOUBLE_SEQ_BN', "
            "'PAR_BN', 'SPARSE', 'PREFIX_TUNING'");
  EXPECT_EQ(parseError("peft_type: LORRA\n"),
            "spec.yaml:1:12: error: peft_type 'LORRA' is not supported "
            "(unknown method); did you mean 'LORA'?; supported: 'LORA', "
            "'IA3', 'BITFIT', 'FREEZE_LAYERS', 'FULL', 'LOREFT', 'DIREFT', "
            "'NODIREFT', 'PROMPT_TUNING', 'BOTTLENECK', 'SEQ_BN', "
            "'DOUBLE_SEQ_BN', 'PAR_BN', 'SPARSE', 'PREFIX_TUNING'");
  EXPECT_EQ(
      parseError("peft_type: LORA\ntarget_modules: [q]\nuse_qalora: true\n"),
      "spec.yaml:3:13: error: 'use_qalora' is a PEFT LoRA feature peftc does "
      "not support yet; remove it or set it to false");
  EXPECT_EQ(parseError("peft_type: LORA\nr: 4\n"),
            "spec.yaml:1:1: error: a LORA method needs 'target_modules' "
            "(module names such as [q_proj, v_proj], a regular expression, or "
            "\"all-linear\"); PEFT's per-architecture defaults are not "
            "available for an ONNX model");
}

TEST(SpecParser, ImpossibleCombinations) {
  EXPECT_EQ(parseError("peft_type: LORA\ntarget_modules: all-linear\n"
                       "layers_to_transform: [1]\n"),
            "spec.yaml:3:1: error: 'layers_to_transform' cannot be used when "
            "'target_modules' is a string (a regular expression or "
            "\"all-linear\"); write the layer into the expression or list the "
            "module names\nspec.yaml:2:1: note: 'target_modules' given here");
  EXPECT_EQ(parseError("peft_type: LORA\ntarget_modules: [q]\n"
                       "layers_pattern: layers\n"),
            "spec.yaml:3:1: error: 'layers_pattern' only selects where the "
            "layer index is read; it needs 'layers_to_transform'");
  EXPECT_EQ(parseError("peft_type: IA3\ntarget_modules: [k_proj]\n"
                       "feedforward_modules: [down_proj]\n"),
            "spec.yaml:3:23: error: 'feedforward_modules' entry 'down_proj' "
            "is not in 'target_modules'; IA3 scales only the modules it "
            "targets\nspec.yaml:2:1: note: 'target_modules' given here");
  EXPECT_EQ(parseError("peft_type: BITFIT\nbias: all\n"),
            "spec.yaml:2:1: error: 'bias' is not an option of BITFIT methods "
            "(it belongs to LORA); a BITFIT method selects biases with "
            "'biases' (all, or module names)");
  EXPECT_EQ(
      parseError("peft_type: IA3\ntarget_modules: [k]\nbias: lora_only\n"),
      "spec.yaml:3:1: error: 'bias' is not an option of IA3 methods (it "
      "belongs to LORA); to train biases without LoRA add a BITFIT "
      "method (peft_type: BITFIT)");
  EXPECT_EQ(parseError("peft_type: FULL\ntraining:\n  schedule:\n"
                       "    warmup_steps: 2\n    warmup_ratio: 0.1\n"),
            "spec.yaml:5:5: error: 'warmup_steps' and 'warmup_ratio' both "
            "given; use one (transformers would silently ignore "
            "'warmup_ratio')\nspec.yaml:4:5: note: 'warmup_steps' given here");
  EXPECT_EQ(parseError("peft_type: FREEZE_LAYERS\ntrainable_layers: [1]\n"
                       "last_n_layers: 1\n"),
            "spec.yaml:3:1: error: 'last_n_layers' and 'trainable_layers' "
            "both given; name the layers or count them from the top, not "
            "both\nspec.yaml:2:1: note: 'trainable_layers' given here");
  EXPECT_EQ(parseError("peft_type: FULL\ntraining:\n  batch_size: 4\n"
                       "  inputs: {input_ids: [2, 16]}\n"),
            "spec.yaml:4:12: error: input 'input_ids' has leading (batch) "
            "dimension 2 but 'batch_size' is 4\nspec.yaml:3:3: note: "
            "'batch_size' given here");
  EXPECT_EQ(parseError("peft_type: FULL\ntraining: {optimizer: {type: sgd, "
                       "nesterov: true}}\n"),
            "spec.yaml:2:35: error: 'nesterov: true' needs a positive "
            "'momentum' (as in torch.optim.SGD)");
}

TEST(SpecParser, SyntaxAndStructureErrors) {
  EXPECT_EQ(parseError("peft_type: LORA\ntarget_modules: [q\n"),
            "spec.yaml:2:19: error: invalid YAML: Could not find closing ]!");
  EXPECT_EQ(parseError("peft_type: LORA\nr: 4\nr: 8\n"),
            "spec.yaml:3:1: error: duplicate key 'r' (first given at 2:1)");
  EXPECT_EQ(parseError(""),
            "spec.yaml:1:1: error: the spec is empty; it needs 'peft_type' "
            "(one method, as in adapter_config.json) or 'methods' (a list of "
            "methods)");
  EXPECT_EQ(parseError("r: 8\ntarget_modules: [q]\n"),
            "spec.yaml:1:1: error: 'r' is a method option but the spec names "
            "no method; add 'peft_type' (e.g. peft_type: LORA)");
  EXPECT_EQ(parseError("metods: []\n"),
            "spec.yaml:1:1: error: unknown key 'metods' in the spec; did you "
            "mean 'methods'?");
  EXPECT_EQ(parseError("peft_type: LORA\ntarget_modules: '(?P<x>q)'\n"),
            "spec.yaml:2:17: error: 'target_modules': '(?P<x>q)' is not a "
            "valid regular expression: '(?P' is Python regex syntax peftc "
            "does not support (named groups, lookbehind, inline flags and "
            "\\A/\\Z are not available)");
}

TEST(SpecParser, MissingFile) {
  PeftSpec spec;
  std::string error;
  EXPECT_FALSE(parseSpecFile("/nonexistent/spec.yaml", spec, error));
  EXPECT_EQ(
      error.rfind("/nonexistent/spec.yaml: error: cannot read the spec", 0), 0u)
      << error;
}

} // namespace
