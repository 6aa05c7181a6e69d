"""Examples in, the policy's responses out: the same prompt pipeline and rollout
functions as RL, used by evaluation, chat and the report.

  generate = Generator(model_config, tokenizer, pipeline_config, rollout_fn)
  texts, lengths = generate(params, examples, rng)        # the first sample of each
  samples = generate.all_samples(params, examples, rng)   # every sample, per example
  texts, lengths = generate.voted(params, examples, rng)  # each prompt's vote winner
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from data.example import Example
from data.pipeline import Pipeline
from data.pipeline_config import PipelineConfig
from data.tokenizer import Tokenizer
from models.config import ModelConfig
from rl import rollout as rollout_lib
from verifiers import voting


@dataclasses.dataclass
class Generator:
  model_config: ModelConfig
  tokenizer: Tokenizer
  pipeline_config: PipelineConfig  # mode "prompt"; its batch_size is the generation batch.
  rollout_fn: rollout_lib.RolloutFn  # __call__ reads the first sample of each prompt.

  def __post_init__(self):
    self.pipeline_config = dataclasses.replace(
        self.pipeline_config, mode="prompt", shuffle=False, num_epochs=1, drop_remainder=False,
        pack=False)

  def __call__(self, params, examples: Sequence[Example], rng: jax.Array
               ) -> tuple[list[str], list[int]]:
    """Responses (special tokens kept, the stop token included) and their token counts,
    in the order of `examples`: the first sample of each. Examples the pipeline skips get
    an empty response."""
    samples = self._samples(params, examples, rng)
    texts = [samples.get(e.uid, [("", 0)])[0] for e in examples]
    return [t for t, _ in texts], [n for _, n in texts]

  def all_samples(self, params, examples: Sequence[Example], rng: jax.Array
                  ) -> list[list[str]]:
    """Every sample of the rollout function (its `num_samples` per prompt), per example in
    order; an empty list for an example the pipeline skips."""
    samples = self._samples(params, examples, rng)
    return [[t for t, _ in samples.get(e.uid, [])] for e in examples]

  def voted(self, params, examples: Sequence[Example], rng: jax.Array
            ) -> tuple[list[str], list[int]]:
    """Per example in order, the sample that the confidence-weighted vote over its samples
    elects (`verifiers.voting`, METHOD.md §4: score(a) = Σ_j conf_j · 1[a_j = a]; its first
    trajectory giving the winning answer), and its token count; the first sample when no
    sample gives an answer, an empty response for an example the pipeline skips."""
    samples = self._samples(params, examples, rng)
    out = []
    for example in examples:
      options = samples.get(example.uid, [("", 0)])
      index = voting.vote_responses([text for text, _ in options]).index
      out.append(options[index or 0])
    return [t for t, _ in out], [n for _, n in out]

  def _samples(self, params, examples, rng) -> dict[str, list[tuple[str, int]]]:
    by_uid = {}
    for i, batch in enumerate(Pipeline(list(examples), self.tokenizer, self.pipeline_config)):
      prompts = rollout_lib.PromptBatch.from_data(batch, self.model_config)
      generation = self.rollout_fn(params, prompts, jax.random.fold_in(rng, i))
      samples = jax.device_get(generation.samples)
      g = generation.num_samples
      for row, info in enumerate(prompts.rows):
        if info is None:
          continue
        by_uid[info.uid] = [
            (self.tokenizer.decode(np.asarray(samples.tokens_bt[n, :samples.lengths_b[n]])
                                   .tolist()), int(samples.lengths_b[n]))
            for n in range(row * g, (row + 1) * g)]
    return by_uid
