"""Every config builds for every argument, and bad arguments fail by name."""

import importlib

import pytest

NAMES = ["safeladder", "judges", "sft", "m3rl", "efficient", "search"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("arg", ["runlocal", "model=7b", "model=72b"])
def test_configs_build_and_name_their_stages(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  assert config.stages
  for stage in config.stages:
    assert stage in config, f"{name}:{arg} runs {stage} without its section"


def test_production_and_local_differ_where_they_must():
  local = importlib.import_module("configs.safeladder").get_config("runlocal")
  big = importlib.import_module("configs.safeladder").get_config("model=72b")
  assert local.model.preset == "tiny" and big.model.preset == "qwen2_5_vl_72b"
  assert local.world is not None and big.world is None
  assert big.m3rl_b.learning_rate == 1e-6 and big.m3rl_b.num_samples == 8
  # The 72B plan fits a v5p-64 only with the KL reference stored in bf16.
  for stage in ("m3rl_a", "m3rl_b", "efficient", "search"):
    assert big[stage].reference_dtype == "bfloat16"
  assert big.m3rl_b.loss_config.kl_coef > 0


@pytest.mark.parametrize("arg, message", [("model=13b", "unknown model"),
                                          ("runlocal,model=7b", "runlocal uses the tiny"),
                                          ("fast", "unknown config argument 'fast'")])
def test_bad_arguments_fail_clearly(arg, message):
  with pytest.raises(ValueError, match=message):
    importlib.import_module("configs.safeladder").get_config(arg)
