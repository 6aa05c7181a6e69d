"""A small world shared by the world tests (session scope keeps each file fast)."""

import pytest

from data.world import World
from tests.data.world.tiny import SMALL_CONFIG


@pytest.fixture(scope="session")
def small_world() -> World:
  return World(SMALL_CONFIG)
