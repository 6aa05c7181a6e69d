"""Tests of safework/infra/config.py: config slices to frozen dataclasses, with clear errors."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import ml_collections
import pytest

from safework.infra.config import ConfigError, from_config, to_config_dict


@dataclasses.dataclass(frozen=True)
class Schedule:
  warmup_steps: int = 10
  peak_lr: float = 1e-5
  kind: Literal["cosine", "linear"] = "cosine"


@dataclasses.dataclass(frozen=True)
class Loss:
  name: Literal["cpgd", "grpo", "dr_grpo"] = "cpgd"
  clip_eps: float = 0.2
  group_size: int = 8
  normalise: bool = True
  weights: tuple[float, ...] = (1.0,)
  window: tuple[int, str] = (4, "tokens")
  kl_coef: float | None = None
  schedule: Schedule = Schedule()
  per_verifier: dict[str, float] = dataclasses.field(default_factory=dict)
  extra: Any = None

  def __post_init__(self):
    if self.group_size < 2:
      raise ValueError(f"group_size must be >= 2 for group-relative advantages, got "
                       f"{self.group_size}")


@dataclasses.dataclass(frozen=True)
class Required:
  seed: int


@dataclasses.dataclass
class Mutable:
  x: int = 0


def _rl_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.rl = ml_collections.ConfigDict()
  config.rl.loss = ml_collections.ConfigDict({
      "name": "grpo", "clip_eps": 1, "weights": [0.5, 0.25], "window": [2, "steps"],
      "schedule": {"warmup_steps": 3, "kind": "linear"}, "per_verifier": {"safety": 2},
  })
  return config


def test_values_are_converted_and_defaults_fill_the_rest():
  loss = from_config(Loss, _rl_config().rl.loss, path="rl.loss")
  assert loss == Loss(name="grpo", clip_eps=1.0, weights=(0.5, 0.25), window=(2, "steps"),
                      schedule=Schedule(warmup_steps=3, kind="linear"),
                      per_verifier={"safety": 2.0})
  assert type(loss.clip_eps) is float and type(loss.per_verifier["safety"]) is float
  assert isinstance(loss.weights, tuple) and loss.group_size == 8
  assert loss.schedule.peak_lr == 1e-5
  with pytest.raises(dataclasses.FrozenInstanceError):
    loss.clip_eps = 0.3


def test_plain_dicts_none_and_instances():
  assert from_config(Loss, None) == Loss()
  assert from_config(Loss, {"kl_coef": 0.05, "group_size": 4}) == Loss(kl_coef=0.05,
                                                                       group_size=4)
  given = Loss(group_size=16)
  assert from_config(Loss, given) is given
  nested = from_config(Loss, {"schedule": Schedule(peak_lr=3.0)})
  assert nested.schedule == Schedule(peak_lr=3.0)


def test_field_references_are_resolved():
  config = ml_collections.ConfigDict({"group": 4})
  config.loss = ml_collections.ConfigDict({"group_size": config.get_ref("group")})
  config.group = 6
  assert from_config(Loss, config.loss).group_size == 6


def test_round_trip_through_config_dict():
  loss = Loss(name="dr_grpo", weights=(1.0, 2.0), kl_coef=0.1, per_verifier={"value": 0.5},
              schedule=Schedule(warmup_steps=0, kind="linear"))
  config = to_config_dict(loss)
  assert isinstance(config, ml_collections.ConfigDict)
  assert isinstance(config.schedule, ml_collections.ConfigDict)
  assert config.schedule.kind == "linear" and config.kl_coef == 0.1
  assert from_config(Loss, config) == loss


def test_unknown_field_names_the_path_the_fields_and_a_close_match():
  config = _rl_config()
  config.rl.loss.clip_epsilon = 0.3
  with pytest.raises(ConfigError) as error:
    from_config(Loss, config.rl.loss, path="rl.loss")
  message = str(error.value)
  assert "Unknown field 'rl.loss.clip_epsilon' for Loss" in message
  assert "known fields: name, clip_eps, group_size, normalise, weights" in message
  assert "did you mean 'clip_eps'?" in message


def test_unknown_nested_field_names_the_nested_path():
  with pytest.raises(ConfigError, match=r"Unknown field 'rl\.loss\.schedule\.warmup' for "
                     r"Schedule; known fields: warmup_steps, peak_lr, kind; did you mean "
                     r"'warmup_steps'\?"):
    from_config(Loss, {"schedule": {"warmup": 5}}, path="rl.loss")


@pytest.mark.parametrize("values, pattern", [
    ({"group_size": 8.0}, r"'rl\.loss\.group_size' must be int, got float 8\.0"),
    ({"group_size": True}, r"'rl\.loss\.group_size' must be int, got bool True"),
    ({"clip_eps": "0.2"}, r"'rl\.loss\.clip_eps' must be float, got str '0\.2'"),
    ({"normalise": 1}, r"'rl\.loss\.normalise' must be bool, got int 1"),
    ({"weights": 1.0}, r"'rl\.loss\.weights' must be a tuple \(or list\), got float"),
    ({"weights": [1.0, "x"]}, r"'rl\.loss\.weights\[1\]' must be float, got str 'x'"),
    ({"window": [1, "a", 2]}, r"'rl\.loss\.window' must have 2 entries, got 3"),
    ({"kl_coef": "high"}, r"'rl\.loss\.kl_coef' must be float, got str 'high' \(or None\)"),
    ({"schedule": {"peak_lr": None}}, r"'rl\.loss\.schedule\.peak_lr' must be float"),
    ({"schedule": 3}, r"'rl\.loss\.schedule' must be a config dict for Schedule"),
    ({"per_verifier": {"safety": "x"}}, r"'rl\.loss\.per_verifier\.safety' must be float"),
])
def test_wrong_types_name_the_field(values, pattern):
  with pytest.raises(ConfigError, match=pattern):
    from_config(Loss, values, path="rl.loss")


def test_bad_literal_lists_the_choices_and_a_close_match():
  with pytest.raises(ConfigError, match=r"'rl\.loss\.name' is 'grpoo'; choose one of 'cpgd', "
                     r"'grpo', 'dr_grpo'; did you mean 'grpo'\?"):
    from_config(Loss, {"name": "grpoo"}, path="rl.loss")
  with pytest.raises(ConfigError, match=r"'rl\.loss\.schedule\.kind' is 'step'"):
    from_config(Loss, {"schedule": {"kind": "step"}}, path="rl.loss")


def test_post_init_errors_get_the_path():
  with pytest.raises(ConfigError, match=r"rl\.loss: group_size must be >= 2"):
    from_config(Loss, {"group_size": 1}, path="rl.loss")


def test_missing_required_field_and_non_frozen_class():
  with pytest.raises(ConfigError, match=r"Missing required field 'run\.seed' for Required"):
    from_config(Required, {}, path="run")
  assert from_config(Required, {"seed": 3}) == Required(seed=3)
  with pytest.raises(TypeError, match="Mutable must be a frozen dataclass"):
    from_config(Mutable, {})
