"""WorldConfig validation: bad or unknown fields fail with their name."""

import pytest

from data.world import WorldConfig
from safework.infra.config import ConfigError


@pytest.mark.parametrize("fields, message", [
    ({"harmful_fraction": 1.5}, "harmful_fraction must be in"),
    ({"sft_examples": -1}, "sft_examples must be an int"),
    ({"family_mix": (("general", 1.0), ("maths", 1.0))}, "family_mix: unknown key 'maths'"),
    ({"family_mix": (("general", 1.0), ("general", 1.0))}, "family_mix names a key twice"),
    ({"judge_mix": (("value", 0.0),)}, "judge_mix: weights must sum"),
    ({"unsafe_compliance_rate": 0.7, "flat_refusal_rate": 0.5}, "flat_refusal_rate must be"),
    ({"image_sizes": (60,)}, "image_sizes: 60 must be a multiple of 28"),
    ({"image_sizes": (56,), "max_objects": 5}, r"max_objects must be in \[1, 4\]"),
    ({"overlong_repeats": (3, 2)}, "overlong_repeats"),
    ({"known_entities": 1}, "known_entities must be >= 2"),
    ({"judge_train_kind_weights": (("knowledge", "wrong", 0.0),)}, "judge_train_kind_weights"),
    ({"judge_train_kind_weights": (("oracle", "wrong", 2.0),)}, "judge_train_kind_weights"),
    ({"judge_knowledge_pools": ("known", "search_eval")}, "search_eval is held out"),
    ({"judge_knowledge_pools": ()}, "judge_knowledge_pools"),
    ({"judge_knowledge_pools": ("known", "known")}, "judge_knowledge_pools"),
])
def test_inconsistent_fields_fail_naming_the_field(fields, message):
  with pytest.raises(ValueError, match=message):
    WorldConfig(**fields)


def test_from_config_names_unknown_fields_with_their_path():
  assert WorldConfig.from_config({"seed": 5, "image_sizes": [56]}) == WorldConfig(
      seed=5, image_sizes=(56,))
  with pytest.raises(ConfigError, match=r"data\.world\.sede.*did you mean 'seed'"):
    WorldConfig.from_config({"sede": 5})
