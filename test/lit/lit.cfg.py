# -*- Python -*-
import os
import lit.formats

config.name = "peftc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".onnxtext", ".test"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.peft_obj_root, "test", "lit")

config.environment["PATH"] = os.pathsep.join(
    [config.peft_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", os.environ["PATH"])])
config.substitutions.append(("%peft_src", config.peft_src_root))
config.substitutions.append(("%python", config.python_executable))
