"""The SafeLadder world: a deterministic synthetic environment with gold labels.

Small rendered images; prompts in four families (general, safety, value, knowledge);
CoT-SFT traces with configurable flaws; judge-training data; a knowledge base whose
search-only part lives only in the search corpus; and an oracle that labels any response.
See `world.World` for splits, `config.WorldConfig` for the settings and `oracle.label`.
"""

from data.world.config import FAMILIES, JUDGES, SPLITS, WorldConfig
from data.world.oracle import (
    FALSE_CERTAIN_AT, HELPFULNESS_VERDICTS, KNOWLEDGE_VERDICTS, SAFETY_VERDICTS, VALUE_VERDICTS,
    VERDICTS, Verdicts, label)
from data.world.world import World, WorldSplit, example_bytes

__all__ = [
    "FAMILIES", "JUDGES", "SPLITS", "WorldConfig", "FALSE_CERTAIN_AT", "HELPFULNESS_VERDICTS",
    "KNOWLEDGE_VERDICTS", "SAFETY_VERDICTS", "VALUE_VERDICTS", "VERDICTS", "Verdicts", "label",
    "World", "WorldSplit", "example_bytes",
]
