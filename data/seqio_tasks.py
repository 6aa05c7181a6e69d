"""seqio tasks and mixtures over the SafeLadder world, for t5x-style training and eval.

    names = register_world_tasks(world, "/tmp/spm/tokenizer.model")
    ds = seqio.get_mixture_or_task(names.sft_mixture).get_dataset(
        sequence_length=None, split="sft", shuffle=False, num_epochs=1)

Features: `inputs` is the chat-template prompt (system turn, user turn with one run of
`<|image_pad|>` per image, then `<|im_start|>assistant\\n`) and `targets` the response
followed by `<|im_end|>`, both tokenized by a `seqio.SentencePieceVocabulary` over the
world's SentencePiece model. The special tokens and the newline are single pieces of that
model, so `inputs + targets` are the ids the grain path (`data.chat`) gives the same
example, less the template's closing newline. Tasks also pass `uid` and `label` through
as strings; mixtures keep only `inputs` and `targets` (and, like every seqio mixture,
repeat forever unless given `num_epochs`).

Tasks: `{prefix}_sft_{family}` (split "sft", the CoT-SFT traces) mixed by the world's
family mix into `{prefix}_cot_sft`; `{prefix}_eval_{family}` (split "eval", targets the
gold answer, "" where there is none) mixed equally into `{prefix}_eval`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

import seqio
import tensorflow as tf

from data import images as images_lib
from data import special_tokens as st
from data.chat import DEFAULT_SYSTEM
from data.example import Example
from data.world import FAMILIES, World


def prompt_text(example: Example, grids: Sequence[tuple[int, int, int]],
                merge_size: int = 2) -> str:
  """The chat-template prompt of `example` as text, ending with the generation prompt."""
  system = DEFAULT_SYSTEM if example.system is None else example.system
  vision = "".join(
      st.VISION_START + st.IMAGE_PAD * (t * h * w // merge_size**2) + st.VISION_END
      for t, h, w in grids)
  return (f"{st.IM_START}system\n{system}{st.IM_END}\n"
          f"{st.IM_START}user\n{vision}{example.question}{st.IM_END}\n"
          f"{st.IM_START}assistant\n")


def _grids(example: Example, min_pixels: int | None, max_pixels: int | None):
  return [images_lib.preprocess_image(image, min_pixels, max_pixels)[1]
          for image in example.images]


def _dataset_fn(split: str, shuffle_files: bool, seed: int | None = None, *, world: World,
                world_split: str, family: str, target: str, min_pixels: int | None,
                max_pixels: int | None) -> tf.data.Dataset:
  del shuffle_files, seed  # One in-memory source; seqio shuffles examples itself.
  if split != world_split:
    raise ValueError(f"seqio task over world split {world_split!r} has no split {split!r}")
  source = world.split(world_split)
  indices = source.indices(family)

  def generate():
    for i in indices:
      example = source[i]
      text = (example.response + st.IM_END) if target == "response" else (example.gold or "")
      yield {"inputs": prompt_text(example, _grids(example, min_pixels, max_pixels)),
             "targets": text, "uid": example.uid, "label": example.label}

  spec = {k: tf.TensorSpec((), tf.string) for k in ("inputs", "targets", "uid", "label")}
  return tf.data.Dataset.from_generator(generate, output_signature=spec)


@dataclasses.dataclass(frozen=True)
class TaskNames:
  """What `register_world_tasks` registered."""

  sft_tasks: tuple[str, ...]
  sft_mixture: str
  eval_tasks: tuple[str, ...]
  eval_mixture: str


def vocabulary(model_file: str | os.PathLike[str]) -> seqio.SentencePieceVocabulary:
  """A seqio vocabulary over a SentencePiece model file (e.g. `train_sentencepiece`'s)."""
  if not os.path.isfile(model_file):
    raise FileNotFoundError(f"SentencePiece model {model_file} does not exist")
  return seqio.SentencePieceVocabulary(os.fspath(model_file))


def _register_task(name: str, **kwargs) -> str:
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add_provider(name, seqio.Task(name, **kwargs))
  return name


def _register_mixture(name: str, tasks) -> str:
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  seqio.MixtureRegistry.add(name, tasks)
  return name


def register_world_tasks(world: World, model_file: str | os.PathLike[str], *,
                         prefix: str = "safeladder_world", min_pixels: int | None = None,
                         max_pixels: int | None = None) -> TaskNames:
  """Registers (or re-registers) the world's seqio tasks and mixtures."""
  vocab = vocabulary(model_file)
  features = {"inputs": seqio.Feature(vocab, add_eos=False),
              "targets": seqio.Feature(vocab, add_eos=False)}
  names: dict[str, list[str]] = {"sft": [], "eval": []}
  for kind, world_split, target in (("sft", "sft", "response"), ("eval", "eval", "gold")):
    for family in FAMILIES:
      if not world.split(world_split).indices(family):
        continue
      fn = functools.partial(_dataset_fn, world=world, world_split=world_split, family=family,
                             target=target, min_pixels=min_pixels, max_pixels=max_pixels)
      names[kind].append(_register_task(
          f"{prefix}_{kind}_{family}", source=seqio.FunctionDataSource(fn, [world_split]),
          output_features=features, preprocessors=[seqio.preprocessors.tokenize]))
  weights = dict(world.config.family_mix)
  sft_mixture = _register_mixture(
      f"{prefix}_cot_sft",
      [(task, weights[task.rsplit("_", 1)[-1]]) for task in names["sft"]])
  eval_mixture = _register_mixture(f"{prefix}_eval", [(task, 1.0) for task in names["eval"]])
  return TaskNames(tuple(names["sft"]), sft_mixture, tuple(names["eval"]), eval_mixture)
