"""The safety "aha" moment (METHOD.md §6): mutual information between the policy's hidden
state at every token of its response and the representation of a safe reference
response, estimated with HSIC as MI-Peaks does (arXiv 2506.02867); the peaks are sparse
and the tokens at the peaks are reported.

  config = AnalysisConfig(layer=2)
  records = analyse(model_config, params, tokenizer, examples, responses, references, config)
  peak_token_counts(records)          # {"▁avoid": 5, ...}

Axis letters: B batch, T tokens, D model width, L layers.

A token's state is the output of decoder layer `config.layer` (0-based, before the final
norm) at its position. The model is causal, so with the response teacher-forced this is
the last-position state the sampler had when it fed that token. The reference is encoded
alone (no chat template) and represented by its last token's state at the same layer.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from data.example import Example
from data.pipeline import Pipeline
from data.pipeline_config import PipelineConfig
from data.tokenizer import Tokenizer
from data.world import safety as world_safety
from models import decoder, vlm
from models.config import ModelConfig
from models.inputs import ModelInputs, make_inputs
from rl import sft


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
  layer: int  # Decoder layer (0-based) whose output is the token's state.
  sigma: float = 50.0  # Gaussian kernel width of the HSIC estimate (MI-Peaks' 50).
  epsilon: float = 1e-5  # Ridge of the normalised HSIC, times the sample count.
  # (ours) A token is a peak when its MI exceeds the response's mean by `peak_z` standard
  # deviations (MI-Peaks reports sudden, sparse rises without one fixed rule).
  peak_z: float = 2.0
  max_tokens: int = 512  # Prompt + response budget per example, tokens.
  max_patches: int = 256  # Image patches per example.

  def __post_init__(self):
    if self.layer < 0 or self.sigma <= 0 or self.epsilon <= 0 or self.max_tokens < 2:
      raise ValueError(f"AnalysisConfig: layer >= 0, sigma > 0, epsilon > 0, max_tokens >= 2; "
                       f"got {self}")


def layer_states(model_config: ModelConfig, params, inputs: ModelInputs, layer: int
                 ) -> jax.Array:
  """The output of decoder layer `layer` at every position, float32 [B, T, D]."""
  count = model_config.text.num_hidden_layers
  if not 0 <= layer < count:
    raise ValueError(f"layer must be in [0, {count}), got {layer}")
  def is_layer(module, method):
    return isinstance(module, decoder.DecoderLayer) and method == "__call__"

  _, captured = vlm.Qwen25VL(model_config).apply(
      params, inputs, method=vlm.Qwen25VL.hidden_states, capture_intermediates=is_layer,
      mutable=["intermediates"])
  layers = captured["intermediates"]["decoder"]
  if "layers" in layers:  # Scanned: one entry stacked on a leading L axis.
    states_lbtd = layers["layers"]["__call__"][0][0]
    return states_lbtd[layer].astype(jnp.float32)
  return layers[f"layers_{layer}"]["__call__"][0][0].astype(jnp.float32)


def hsic_mi(x_d: jax.Array, y_d: jax.Array, sigma: float = 50.0, epsilon: float = 1e-5
            ) -> jax.Array:
  """The normalised-HSIC estimate of the mutual information of two vectors, MI-Peaks'
  estimator: each vector's D entries are the samples of a scalar variable, with Gaussian
  kernel K_ij = exp(-(x_i - x_j)^2 / (2 sigma^2)), centred on the right (K H, with
  H = I - 11^T / D); R = K_c (K_c + epsilon D I)^-1 and the estimate is trace(R_x R_y).

  Args:
    x_d, y_d: float [D] each.

  Returns:
    a float32 scalar.
  """
  d = x_d.shape[0]
  centre = jnp.eye(d) - jnp.full((d, d), 1.0 / d)

  def resolvent(v_d):
    v = v_d.astype(jnp.float32)
    gram = jnp.exp(-jnp.square(v[:, None] - v[None, :]) / (2.0 * sigma * sigma)) @ centre
    return jnp.linalg.solve((gram + epsilon * d * jnp.eye(d)).T, gram.T).T

  return jnp.sum(resolvent(x_d) * resolvent(y_d).T)


@functools.partial(jax.jit, static_argnames=("sigma", "epsilon"))
def mi_trajectory(states_td: jax.Array, reference_d: jax.Array, sigma: float = 50.0,
                  epsilon: float = 1e-5) -> jax.Array:
  """`hsic_mi` of every row of states [T, D] with the reference [D], float32 [T]."""
  return jax.vmap(lambda x_d: hsic_mi(x_d, reference_d, sigma, epsilon))(states_td)


def find_peaks(mi_t: np.ndarray, z: float) -> np.ndarray:
  """Indices whose MI exceeds the mean by `z` standard deviations (none when flat)."""
  mi_t = np.asarray(mi_t, np.float64)
  std = mi_t.std()
  if mi_t.size < 2 or std == 0:
    return np.zeros((0,), np.int64)
  return np.flatnonzero(mi_t > mi_t.mean() + z * std)


@dataclasses.dataclass(frozen=True)
class TokenMI:
  """One analysed response: its tokens (as pieces), their MI with the reference, and
  the indices of the peaks."""

  uid: str
  pieces: tuple[str, ...]
  mi: np.ndarray  # float32 [T_response]
  peaks: np.ndarray  # int [P], indices into `pieces`

  @property
  def peak_pieces(self) -> list[str]:
    return [self.pieces[i] for i in self.peaks]


def _states_fn(model_config: ModelConfig, layer: int):
  return jax.jit(lambda params, inputs: layer_states(model_config, params, inputs, layer))


def analyse(model_config: ModelConfig, params, tokenizer: Tokenizer,
            examples: Sequence[Example], responses: Sequence[str], references: Sequence[str],
            config: AnalysisConfig) -> list[TokenMI]:
  """The MI trajectory and peaks of each (example, response), against its safe reference
  response. Examples the pipeline cannot encode (too long, a bad image) are skipped and
  absent from the result; a response or reference without tokens is an error."""
  if not len(examples) == len(responses) == len(references):
    raise ValueError(f"analyse: {len(examples)} examples, {len(responses)} responses and "
                     f"{len(references)} references; they must pair up")
  states = _states_fn(model_config, config.layer)
  with_responses = [dataclasses.replace(e, response=r) for e, r in zip(examples, responses)]
  reference_of = {e.uid: ref for e, ref in zip(examples, references)}
  pipeline = Pipeline(with_responses, tokenizer, PipelineConfig(
      mode="sft", batch_size=1, max_tokens=config.max_tokens, max_patches=config.max_patches,
      shuffle=False, num_epochs=1, drop_remainder=False))
  records = []
  for batch in pipeline:
    if not batch.rows[0]:  # The example was skipped (counted by the pipeline).
      continue
    info = batch.rows[0][0].uid
    step = sft.sft_batch(batch, model_config)
    response_t = np.flatnonzero(step.loss_mask[0] > 0)
    if response_t.size == 0:
      raise ValueError(f"{info}: the response has no tokens")
    states_td = np.asarray(states(params, step.inputs))[0, response_t]
    reference_d = _reference_state(model_config, params, tokenizer, reference_of[info], states)
    mi_t = np.asarray(mi_trajectory(jnp.asarray(states_td), jnp.asarray(reference_d),
                                    config.sigma, config.epsilon))
    tokens = np.asarray(step.inputs.tokens)[0, response_t]
    records.append(TokenMI(info, tuple(tokenizer.id_to_token(int(t)) for t in tokens), mi_t,
                           find_peaks(mi_t, config.peak_z)))
  if len(records) < len(examples):
    logging.warning("analyse: %d of %d examples skipped by the pipeline (too long for "
                    "max_tokens=%d, or a bad image)", len(examples) - len(records),
                    len(examples), config.max_tokens)
  return records


def _reference_state(model_config, params, tokenizer, text: str, states) -> np.ndarray:
  ids = np.asarray([tokenizer.encode(text)], np.int32)
  if ids.shape[1] == 0:
    raise ValueError("the reference response has no tokens")
  inputs, _ = make_inputs(ids, np.ones_like(ids), model_config)
  return np.asarray(states(params, inputs))[0, -1]


def peak_token_counts(records: Sequence[TokenMI]) -> dict[str, int]:
  """How often each token piece is at a peak, most frequent first."""
  counts = collections.Counter(p for r in records for p in r.peak_pieces)
  return dict(counts.most_common())


def world_harmful_prompts(world, split: str, count: int) -> tuple[list[Example], list[str]]:
  """The first `count` harmful safety prompts of a world split, each with its safe
  reference response (the world's "warning" answer: it explains the risk and offers the
  safe alternative, METHOD.md §3's best verdict)."""
  source = world.split(split)
  examples = [source[i] for i in source.indices("safety") if source[i].meta["harmful"]][:count]
  references = [world_safety.respond(e, "warning", np.random.default_rng(i), world.context)[0]
                for i, e in enumerate(examples)]
  return examples, references
