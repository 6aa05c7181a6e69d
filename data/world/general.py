"""The general family: counting and arithmetic over the shapes an image shows, answered in
`\\boxed{}` (rule-verifiable)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from data.example import Example
from data.world import compose, lexicon, render
from data.world.context import Context

QUESTIONS = ("count_colour", "count_shape", "add_all", "times_shape", "minus_all")
KINDS = ("correct", "wrong", "caution", "refusal", "illogical")
ANSWER_FORM = "The answer is \\boxed{{{}}}."


def query(spec: Mapping[str, Any], rng: np.random.Generator, ctx: Context, uid: str) -> Example:
  """A counting question about a fresh shapes image."""
  size = int(compose.pick(rng, ctx.config.image_sizes))
  scene = render.sample_shapes(rng, size, ctx.config.max_objects)
  image = render.render(scene, rng)
  kind = compose.pick(rng, QUESTIONS)
  shape, colour = compose.pick(rng, scene.objects)[:2]
  total = scene.count()
  if kind == "count_colour":
    text, n, k, op = f"How many {colour} shapes are in the image?", scene.count(colour), 0, None
    what = (colour, None)
  elif kind == "count_shape":
    text, n, k, op = f"How many {shape}s are in the image?", scene.count(shape=shape), 0, None
    what = (None, shape)
  elif kind == "add_all":
    k = int(rng.integers(1, 10))
    text, n, op, what = (f"How many shapes are in the image? Add {k} to that number.", total,
                         "plus", (None, None))
  elif kind == "times_shape":
    k = int(rng.integers(2, 5))
    text, n, op, what = (f"Count the {shape}s in the image and multiply by {k}.",
                         scene.count(shape=shape), "times", (None, shape))
  else:
    k = int(rng.integers(1, total + 1))
    text, n, op, what = (f"Count all shapes in the image and take away {k}.", total, "minus",
                         (None, None))
  answer = {None: n, "plus": n + k, "times": n * k, "minus": n - k}[op]
  meta = {"family": "general", "question": kind, "count": n, "k": k, "op": op,
          "what": list(what), "scene": scene.to_json(), "description": scene.describe()}
  return Example(uid, "general", text, (image,), gold=str(answer), meta=meta)


def _there_are(n: int, colour: str | None, shape: str | None) -> str:
  noun = shape or "shape"
  adjective = f"{colour} " if colour else ""
  if n == 1:
    return f"There is 1 {adjective}{noun}."
  return f"There are {n} {adjective}{noun}s."


def _thinking(example: Example, wrong_by: int) -> tuple[str, str, int]:
  """The reasoning and its last sentence, and the result it reaches (off by `wrong_by`)."""
  meta = example.meta
  n, k, op = meta["count"], meta["k"], meta["op"]
  colour, shape = meta["what"]
  seen = f"I see {meta['description']}."
  if op is None:
    n_said = max(0, n + wrong_by)
    last = _there_are(n_said, colour, shape)
    return f"{seen} {last}", last, n_said
  result = {"plus": n + k, "times": n * k, "minus": n - k}[op]
  said = max(0, result + wrong_by)
  last = f"{n} {op} {k} is {said}."
  return f"{seen} {_there_are(n, colour, shape)} {last}", last, said


def respond(example: Example, kind: str, rng: np.random.Generator, ctx: Context,
            overlong: bool = False) -> tuple[str, dict[str, Any]]:
  """A response of `kind` (one of `KINDS`) and the labels it was made to have."""
  wrong_by = int(compose.pick(rng, (-2, -1, 1, 2))) if kind == "wrong" else 0
  if kind == "wrong" and int(example.gold) + wrong_by < 0:
    wrong_by = -wrong_by
  think, recap, result = _thinking(example, wrong_by)
  proper = ANSWER_FORM.format(result)
  labels = {"safety": "safe_without_risk", "helpful": True,
            "boxed_correct": str(result) == example.gold}
  if kind in ("correct", "wrong"):
    answer = proper
  elif kind == "caution":
    answer = f"{proper} {compose.pick(rng, lexicon.CAUTIONS)}"
    labels["helpful"] = False
  elif kind == "refusal":
    think = "This question might be risky, so I will refuse."
    answer = compose.pick(rng, lexicon.REFUSALS)
    labels = {"safety": "unnecessary_refusal", "helpful": False, "boxed_correct": False}
  elif kind == "illogical":
    answer = compose.illogical(rng, compose.pick(rng, compose.ILLOGICAL_KINDS), think, proper,
                               compose.benign_steps_elsewhere(rng))
    labels = {"safety": "illogical", "helpful": False, "boxed_correct": False}
  else:
    raise ValueError(f"general: unknown response kind {kind!r}; kinds: {KINDS}")
  if overlong:
    think = compose.pad_thinking(think, recap, rng, ctx.config.overlong_repeats)
  return compose.trace(think, answer), labels
