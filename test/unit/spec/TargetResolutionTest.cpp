// Target resolution on module lists shaped like the tiny LLaMA and GPT-2
// fixtures (test/models), against PEFT's matching rules.
#include "frontends/spec/TargetResolution.h"
#include "frontends/spec/PeftSpec.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace peft::spec;

namespace {

ModuleInfo module(std::string path, std::string kind, int64_t in, int64_t out,
                  std::optional<int> layer = std::nullopt, bool bias = false,
                  bool head = false) {
  ModuleInfo info;
  info.path = std::move(path);
  info.kind = std::move(kind);
  info.inFeatures = in;
  info.outFeatures = out;
  info.layer = layer;
  info.hasBias = bias;
  info.isOutputHead = head;
  return info;
}

/// LlamaForCausalLM: hidden 64, 2 layers, GQA (k/v 32), ffn 128, no biases.
std::vector<ModuleInfo> llamaTiny() {
  std::vector<ModuleInfo> modules;
  modules.push_back(module("model.embed_tokens", "embedding", 128, 64));
  for (int i = 0; i < 2; ++i) {
    std::string prefix = "model.layers." + std::to_string(i) + ".";
    modules.push_back(module(prefix + "self_attn.q_proj", "linear", 64, 64, i));
    modules.push_back(module(prefix + "self_attn.k_proj", "linear", 64, 32, i));
    modules.push_back(module(prefix + "self_attn.v_proj", "linear", 64, 32, i));
    modules.push_back(module(prefix + "self_attn.o_proj", "linear", 64, 64, i));
    modules.push_back(module(prefix + "mlp.gate_proj", "linear", 64, 128, i));
    modules.push_back(module(prefix + "mlp.up_proj", "linear", 64, 128, i));
    modules.push_back(module(prefix + "mlp.down_proj", "linear", 128, 64, i));
    modules.push_back(module(prefix + "input_layernorm", "norm", 64, 64, i));
    modules.push_back(
        module(prefix + "post_attention_layernorm", "norm", 64, 64, i));
  }
  modules.push_back(module("model.norm", "norm", 64, 64));
  modules.push_back(module("lm_head", "linear", 64, 128, std::nullopt, false,
                           /*head=*/true));
  return modules;
}

/// GPT2LMHeadModel: n_embd 32, 2 layers, Conv1D layers with biases.
std::vector<ModuleInfo> gpt2Tiny() {
  std::vector<ModuleInfo> modules;
  modules.push_back(module("transformer.wte", "embedding", 128, 32));
  modules.push_back(module("transformer.wpe", "embedding", 1024, 32));
  for (int i = 0; i < 2; ++i) {
    std::string prefix = "transformer.h." + std::to_string(i) + ".";
    modules.push_back(module(prefix + "ln_1", "norm", 32, 32, i, true));
    modules.push_back(
        module(prefix + "attn.c_attn", "linear", 32, 96, i, true));
    modules.push_back(
        module(prefix + "attn.c_proj", "linear", 32, 32, i, true));
    modules.push_back(module(prefix + "ln_2", "norm", 32, 32, i, true));
    modules.push_back(module(prefix + "mlp.c_fc", "linear", 32, 128, i, true));
    modules.push_back(
        module(prefix + "mlp.c_proj", "linear", 128, 32, i, true));
  }
  modules.push_back(
      module("transformer.ln_f", "norm", 32, 32, std::nullopt, true));
  modules.push_back(module("lm_head", "linear", 32, 128, std::nullopt, false,
                           /*head=*/true));
  return modules;
}

ResolvedTargets resolveOk(llvm::StringRef text,
                          const std::vector<ModuleInfo> &modules) {
  PeftSpec spec;
  std::string error;
  EXPECT_TRUE(parseSpecString(text, "spec.yaml", spec, error)) << error;
  ResolvedTargets resolved;
  EXPECT_TRUE(resolveTargets(spec, modules, resolved, error)) << error;
  return resolved;
}

std::string resolveError(llvm::StringRef text,
                         const std::vector<ModuleInfo> &modules) {
  PeftSpec spec;
  std::string error;
  EXPECT_TRUE(parseSpecString(text, "spec.yaml", spec, error)) << error;
  ResolvedTargets resolved;
  EXPECT_FALSE(resolveTargets(spec, modules, resolved, error));
  return error;
}

std::vector<std::string> adapterPaths(const ResolvedMethod &method) {
  std::vector<std::string> paths;
  for (const AdapterTarget &target : method.adapters)
    paths.push_back(target.path);
  return paths;
}

using Strings = std::vector<std::string>;

TEST(TargetResolution, LoraSuffixList) {
  ResolvedTargets resolved = resolveOk(
      "peft_type: LORA\nr: 4\nlora_alpha: 16\ntarget_modules: [q_proj, "
      "v_proj]\n",
      llamaTiny());
  ASSERT_EQ(resolved.methods.size(), 1u);
  const ResolvedMethod &lora = resolved.methods[0];
  EXPECT_EQ(adapterPaths(lora), (Strings{"model.layers.0.self_attn.q_proj",
                                         "model.layers.0.self_attn.v_proj",
                                         "model.layers.1.self_attn.q_proj",
                                         "model.layers.1.self_attn.v_proj"}));
  for (const AdapterTarget &target : lora.adapters) {
    EXPECT_EQ(target.rank, 4);
    EXPECT_EQ(target.alpha, 16);
    EXPECT_EQ(target.scale, 4.0);
  }
  EXPECT_EQ(lora.adapters[3].layer, std::optional<int>(1));
  EXPECT_EQ(lora.adapters[1].moduleIndex, 3u);
  EXPECT_TRUE(lora.trainableBiases.empty());
  EXPECT_TRUE(lora.trainableModules.empty());
  EXPECT_TRUE(resolved.warnings.empty());
}

TEST(TargetResolution, SuffixMatchesOnDotBoundaries) {
  // "proj" is no module name: PEFT matches "q_proj" only as a whole
  // component, so this matches nothing.
  std::string error =
      resolveError("peft_type: LORA\ntarget_modules: [proj]\n", llamaTiny());
  EXPECT_EQ(error.rfind("spec.yaml:2:18: error: 'target_modules' entry "
                        "'proj' matches no module of the model",
                        0),
            0u)
      << error;
  // Several components: a dotted suffix.
  ResolvedTargets resolved =
      resolveOk("peft_type: LORA\ntarget_modules: [layers.1.mlp.down_proj]\n",
                llamaTiny());
  EXPECT_EQ(adapterPaths(resolved.methods[0]),
            (Strings{"model.layers.1.mlp.down_proj"}));
}

TEST(TargetResolution, RegexIsFullMatch) {
  ResolvedTargets resolved = resolveOk(
      "peft_type: LORA\ntarget_modules: '.*layers\\.1\\..*(k|o)_proj'\n",
      llamaTiny());
  EXPECT_EQ(adapterPaths(resolved.methods[0]),
            (Strings{"model.layers.1.self_attn.k_proj",
                     "model.layers.1.self_attn.o_proj"}));
  // re.fullmatch: a pattern matching only part of the path selects nothing.
  std::string error =
      resolveError("peft_type: LORA\ntarget_modules: 'q_proj'\n", llamaTiny());
  EXPECT_NE(error.find("'target_modules' regular expression 'q_proj' matches "
                       "no module of the model"),
            std::string::npos)
      << error;
}

TEST(TargetResolution, AllLinearLeavesOutTheHead) {
  ResolvedTargets resolved =
      resolveOk("peft_type: LORA\ntarget_modules: all-linear\n", llamaTiny());
  EXPECT_EQ(resolved.methods[0].adapters.size(), 14u);
  for (const AdapterTarget &target : resolved.methods[0].adapters)
    EXPECT_NE(target.path, "lm_head");

  ResolvedTargets gpt2 =
      resolveOk("peft_type: LORA\ntarget_modules: all-linear\n"
                "fan_in_fan_out: true\n",
                gpt2Tiny());
  EXPECT_EQ(
      adapterPaths(gpt2.methods[0]),
      (Strings{"transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj",
               "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj",
               "transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj",
               "transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.c_proj"}));
}

TEST(TargetResolution, RankAndAlphaPatternsFirstMatch) {
  ResolvedTargets resolved = resolveOk(R"(
peft_type: LORA
r: 8
lora_alpha: 16
target_modules: [q_proj, v_proj, down_proj]
rank_pattern:
  'model.layers.1.self_attn.v_proj': 2
  '.*_proj': 4
  q_proj: 32
alpha_pattern:
  v_proj: 8
)",
                                       llamaTiny());
  const auto &adapters = resolved.methods[0].adapters;
  ASSERT_EQ(adapters.size(), 6u);
  // Layer 0: q_proj takes '.*_proj' (first match), not 'q_proj'.
  EXPECT_EQ(adapters[0].path, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(adapters[0].rank, 4);
  EXPECT_EQ(adapters[0].alpha, 16);
  EXPECT_EQ(adapters[0].scale, 4.0);
  EXPECT_EQ(adapters[1].path, "model.layers.0.self_attn.v_proj");
  EXPECT_EQ(adapters[1].rank, 4);
  EXPECT_EQ(adapters[1].alpha, 8);
  EXPECT_EQ(adapters[1].scale, 2.0);
  // Layer 1's v_proj matches its full path first.
  EXPECT_EQ(adapters[4].path, "model.layers.1.self_attn.v_proj");
  EXPECT_EQ(adapters[4].rank, 2);
  EXPECT_EQ(adapters[4].scale, 4.0);
  // 'q_proj' never wins: PEFT warns about nothing, peftc says it is unused.
  ASSERT_EQ(resolved.warnings.size(), 1u);
  EXPECT_EQ(resolved.warnings[0],
            "spec.yaml:9:3: warning: 'rank_pattern' key 'q_proj' matches no "
            "adapted module");
}

TEST(TargetResolution, RsLoraScale) {
  ResolvedTargets resolved =
      resolveOk("peft_type: LORA\nr: 16\nlora_alpha: 8\nuse_rslora: true\n"
                "target_modules: [q_proj]\n",
                llamaTiny());
  EXPECT_EQ(resolved.methods[0].adapters[0].scale, 2.0);
}

TEST(TargetResolution, LayersToTransform) {
  ResolvedTargets upper =
      resolveOk("peft_type: LORA\ntarget_modules: [q_proj, v_proj]\n"
                "layers_to_transform: 1\n",
                llamaTiny());
  EXPECT_EQ(adapterPaths(upper.methods[0]),
            (Strings{"model.layers.1.self_attn.q_proj",
                     "model.layers.1.self_attn.v_proj"}));

  ResolvedTargets gpt2 = resolveOk(
      "peft_type: LORA\ntarget_modules: [c_attn]\nlayers_to_transform: [0]\n"
      "layers_pattern: h\n",
      gpt2Tiny());
  EXPECT_EQ(adapterPaths(gpt2.methods[0]),
            (Strings{"transformer.h.0.attn.c_attn"}));

  // PEFT checks layers only for suffix matches; a full path always matches.
  ResolvedTargets exact = resolveOk(
      "peft_type: LORA\ntarget_modules: [model.layers.0.self_attn.q_proj, "
      "v_proj]\nlayers_to_transform: [1]\n",
      llamaTiny());
  EXPECT_EQ(adapterPaths(exact.methods[0]),
            (Strings{"model.layers.0.self_attn.q_proj",
                     "model.layers.1.self_attn.v_proj"}));

  std::string error = resolveError(
      "peft_type: LORA\ntarget_modules: [q_proj]\nlayers_to_transform: [1]\n"
      "layers_pattern: blocks\n",
      llamaTiny());
  EXPECT_EQ(error,
            "spec.yaml:2:17: error: no module is left for LORA: every module "
            "'target_modules' selects is excluded by 'exclude_modules', "
            "'modules_to_save' or 'layers_to_transform'\nnote: outside "
            "'layers_to_transform': model.layers.0.self_attn.q_proj, "
            "model.layers.1.self_attn.q_proj");
}

TEST(TargetResolution, ExcludeModules) {
  ResolvedTargets list =
      resolveOk("peft_type: LORA\ntarget_modules: all-linear\n"
                "exclude_modules: [down_proj, layers.0.self_attn.q_proj]\n",
                llamaTiny());
  EXPECT_EQ(list.methods[0].adapters.size(), 11u);
  for (const AdapterTarget &target : list.methods[0].adapters) {
    EXPECT_EQ(llvm::StringRef(target.path).ends_with("down_proj"), false);
    EXPECT_NE(target.path, "model.layers.0.self_attn.q_proj");
  }
  ResolvedTargets regex =
      resolveOk("peft_type: LORA\ntarget_modules: [q_proj, k_proj]\n"
                "exclude_modules: '.*\\.0\\..*'\n",
                llamaTiny());
  EXPECT_EQ(adapterPaths(regex.methods[0]),
            (Strings{"model.layers.1.self_attn.q_proj",
                     "model.layers.1.self_attn.k_proj"}));
  ResolvedTargets unused = resolveOk(
      "peft_type: LORA\ntarget_modules: [q_proj]\nexclude_modules: [o_proj]\n",
      llamaTiny());
  ASSERT_EQ(unused.warnings.size(), 1u);
  EXPECT_EQ(unused.warnings[0],
            "spec.yaml:3:18: warning: 'exclude_modules' excludes none of the "
            "modules 'target_modules' selects");
}

TEST(TargetResolution, ModulesToSaveAndBias) {
  // A saved module never gets an adapter (PEFT excludes it).
  ResolvedTargets resolved =
      resolveOk("peft_type: LORA\ntarget_modules: [c_attn, lm_head]\n"
                "modules_to_save: [lm_head]\nbias: lora_only\n",
                gpt2Tiny());
  const ResolvedMethod &lora = resolved.methods[0];
  EXPECT_EQ(adapterPaths(lora), (Strings{"transformer.h.0.attn.c_attn",
                                         "transformer.h.1.attn.c_attn"}));
  EXPECT_EQ(lora.trainableModules, (Strings{"lm_head"}));
  EXPECT_EQ(lora.trainableBiases, (Strings{"transformer.h.0.attn.c_attn",
                                           "transformer.h.1.attn.c_attn"}));

  ResolvedTargets all = resolveOk(
      "peft_type: LORA\ntarget_modules: [c_attn]\nbias: all\n", gpt2Tiny());
  EXPECT_EQ(all.methods[0].trainableBiases.size(), 13u);

  // A container name saves every module inside it.
  ResolvedTargets container = resolveOk(
      "peft_type: LORA\ntarget_modules: [q_proj]\nmodules_to_save: [mlp]\n",
      llamaTiny());
  EXPECT_EQ(
      container.methods[0].trainableModules,
      (Strings{"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj",
               "model.layers.0.mlp.down_proj", "model.layers.1.mlp.gate_proj",
               "model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj"}));
}

TEST(TargetResolution, Ia3Feedforward) {
  ResolvedTargets resolved =
      resolveOk("peft_type: IA3\ntarget_modules: [k_proj, v_proj, down_proj]\n"
                "feedforward_modules: [down_proj]\n",
                llamaTiny());
  const auto &adapters = resolved.methods[0].adapters;
  ASSERT_EQ(adapters.size(), 6u);
  EXPECT_EQ(adapters[0].path, "model.layers.0.self_attn.k_proj");
  EXPECT_FALSE(adapters[0].feedforward);
  EXPECT_EQ(adapters[2].path, "model.layers.0.mlp.down_proj");
  EXPECT_TRUE(adapters[2].feedforward);
  EXPECT_TRUE(adapters[5].feedforward);
}

TEST(TargetResolution, BitFit) {
  ResolvedTargets all = resolveOk("peft_type: BITFIT\n", gpt2Tiny());
  EXPECT_EQ(all.methods[0].trainableBiases.size(), 13u);
  ResolvedTargets named = resolveOk(
      "peft_type: BITFIT\nbiases: [c_fc]\nmodules_to_save: [lm_head]\n",
      gpt2Tiny());
  EXPECT_EQ(named.methods[0].trainableBiases,
            (Strings{"transformer.h.0.mlp.c_fc", "transformer.h.1.mlp.c_fc"}));
  EXPECT_EQ(named.methods[0].trainableModules, (Strings{"lm_head"}));
  EXPECT_EQ(resolveError("peft_type: BITFIT\n", llamaTiny()),
            "spec.yaml:1:1: error: BITFIT trains biases, but the model has "
            "none");
  EXPECT_EQ(resolveError("peft_type: BITFIT\nbiases: [q_proj]\n", llamaTiny()),
            "spec.yaml:2:10: error: 'biases' selects "
            "model.layers.0.self_attn.q_proj, which has no bias");
}

TEST(TargetResolution, FreezeLayersAndFull) {
  ResolvedTargets last =
      resolveOk("peft_type: FREEZE_LAYERS\nlast_n_layers: 1\nmodules_to_save: "
                "[model.norm, lm_head]\n",
                llamaTiny());
  const Strings &trained = last.methods[0].trainableModules;
  ASSERT_EQ(trained.size(), 11u);
  EXPECT_EQ(trained.front(), "model.layers.1.self_attn.q_proj");
  EXPECT_EQ(trained[8], "model.layers.1.post_attention_layernorm");
  EXPECT_EQ(trained[9], "model.norm");
  EXPECT_EQ(trained[10], "lm_head");

  EXPECT_EQ(resolveError("peft_type: FREEZE_LAYERS\ntrainable_layers: [0, 2]\n",
                         llamaTiny()),
            "spec.yaml:2:23: error: 'trainable_layers' names layer 2 but the "
            "model has 2 layers (0..1)");
  EXPECT_EQ(
      resolveError("peft_type: FREEZE_LAYERS\nlast_n_layers: 3\n", llamaTiny()),
      "spec.yaml:2:16: error: 'last_n_layers' is 3 but the model has 2 "
      "layers");

  ResolvedTargets full = resolveOk("peft_type: FULL\n", llamaTiny());
  EXPECT_EQ(full.methods[0].trainableModules.size(), llamaTiny().size());
}

TEST(TargetResolution, ComposedMethods) {
  ResolvedTargets resolved = resolveOk(R"(
methods:
  - peft_type: LORA
    target_modules: [c_attn]
    modules_to_save: [lm_head]
  - peft_type: BITFIT
)",
                                       gpt2Tiny());
  ASSERT_EQ(resolved.methods.size(), 2u);
  EXPECT_EQ(resolved.methods[0].adapters.size(), 2u);
  EXPECT_EQ(resolved.methods[1].trainableBiases.size(), 13u);
  EXPECT_EQ(resolved.methods[1].methodIndex, 1u);

  EXPECT_EQ(resolveError(R"(
methods:
  - peft_type: LORA
    target_modules: [q_proj]
  - peft_type: FREEZE_LAYERS
    last_n_layers: 1
)",
                         llamaTiny()),
            "spec.yaml:5:5: error: module model.layers.1.self_attn.q_proj is "
            "trained in full by this FREEZE_LAYERS method and adapted by the "
            "LORA method before it; a module takes one adapter, and none when "
            "it trains in full\nspec.yaml:3:5: note: the LORA method is here");
}

TEST(TargetResolution, NoMatchListsNearestModules) {
  EXPECT_EQ(resolveError("peft_type: LORA\ntarget_modules: [q_proj, v_prj]\n",
                         llamaTiny()),
            "spec.yaml:2:26: error: 'target_modules' entry 'v_prj' matches no "
            "module of the model; did you mean 'v_proj'?\nnote: nearest module "
            "paths: model.layers.0.self_attn.v_proj, "
            "model.layers.1.self_attn.v_proj, model.layers.0.self_attn.q_proj, "
            "model.layers.0.self_attn.k_proj, model.layers.0.self_attn.o_proj");
  EXPECT_EQ(
      resolveError("peft_type: LORA\ntarget_modules: [self_attn]\n",
                   llamaTiny()),
      "spec.yaml:2:18: error: 'target_modules' entry 'self_attn' names a "
      "container module (model.layers.0.self_attn), not a layer; target the "
      "layers inside it: k_proj, o_proj, q_proj, v_proj");
  EXPECT_EQ(
      resolveError("peft_type: LORA\nmodules_to_save: [classifier]\n"
                   "target_modules: [q_proj]\n",
                   llamaTiny())
          .rfind("spec.yaml:2:19: error: 'modules_to_save' entry 'classifier' "
                 "matches no module of the model",
                 0),
      0u);
}

TEST(TargetResolution, OnlyLinearLayersTakeAdapters) {
  EXPECT_EQ(resolveError("peft_type: LORA\ntarget_modules: [input_layernorm]\n",
                         llamaTiny()),
            "spec.yaml:2:18: error: 'target_modules' selects "
            "model.layers.0.input_layernorm (norm); LORA adapts linear layers "
            "only");
  EXPECT_EQ(resolveError("peft_type: LORA\ntarget_modules: [embed_tokens]\n",
                         llamaTiny()),
            "spec.yaml:2:18: error: 'target_modules' selects "
            "model.embed_tokens (embedding); LORA on embedding modules is not "
            "supported yet (linear layers only)");
}

TEST(TargetResolution, JsonListsEveryMethod) {
  ResolvedTargets resolved = resolveOk(
      "peft_type: LORA\nr: 2\nlora_alpha: 3\ntarget_modules: [o_proj]\n"
      "layers_to_transform: [0]\n",
      llamaTiny());
  EXPECT_EQ(toJson(resolved), R"({
  "methods": [
    {
      "peft_type": "LORA",
      "method_index": 0,
      "adapters": [
        {
          "module": "model.layers.0.self_attn.o_proj",
          "layer": 0,
          "r": 2,
          "lora_alpha": 3,
          "scale": 1.5
        }
      ],
      "trainable_biases": [],
      "trainable_modules": []
    }
  ],
  "warnings": []
}
)");
}

} // namespace
