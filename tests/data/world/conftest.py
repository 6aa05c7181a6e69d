"""A small world shared by the world tests (module scope keeps each file fast)."""

import pytest

from data.world import World, WorldConfig

SMALL = WorldConfig(seed=3, sft_examples=900, rl_examples=300, search_rl_examples=60,
                    eval_examples=300, judge_train_examples=900, judge_eval_examples=300)


@pytest.fixture(scope="session")
def small_world() -> World:
  return World(SMALL)
