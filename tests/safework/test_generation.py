"""The generator over world prompts: order, partial batches, one response per prompt."""

import jax

from data.pipeline import Pipeline
from data.pipeline_config import PipelineConfig
from models import vlm
from rl import rollout
from rl.sampling_methods import Greedy
from safework import generation
from tests.data.world.tiny import tiny_model_config, tiny_tokenizer, tiny_world


def _generator(tokenizer, config, batch_size):
  sampling = rollout.SamplingConfig(num_samples=1, max_new_tokens=6, method=Greedy(),
                                    stop_tokens=(tokenizer.special.im_end,))
  return generation.Generator(
      config, tokenizer, PipelineConfig(mode="prompt", batch_size=batch_size, max_tokens=160,
                                        max_patches=64, max_images=1),
      rollout.sampler_rollout(config, sampling))


def test_a_partial_last_batch_gives_the_same_responses_as_full_batches():
  tokenizer = tiny_tokenizer()
  config = tiny_model_config(tokenizer)
  params = vlm.init_params(config, jax.random.key(0))
  examples = [e for e in tiny_world().split("eval") if not e.images][:3]
  # Three prompts in batches of two: the second batch has one empty padding row, which
  # the sampler used to reject ("not one right-padded segment").
  texts, lengths = _generator(tokenizer, config, 2)(params, examples, jax.random.key(1))
  alone = [_generator(tokenizer, config, 1)(params, [e], jax.random.key(1)) for e in examples]
  assert texts == [t[0][0] for t in alone]
  assert lengths == [t[1][0] for t in alone]
  assert all(n > 0 for n in lengths)


def test_a_padding_row_generates_nothing():
  tokenizer = tiny_tokenizer()
  config = tiny_model_config(tokenizer)
  params = vlm.init_params(config, jax.random.key(0))
  examples = [e for e in tiny_world().split("eval") if not e.images][:3]
  generate = _generator(tokenizer, config, 2)
  batches = list(Pipeline(examples, tokenizer, generate.pipeline_config))
  prompts = rollout.PromptBatch.from_data(batches[1], config)
  assert prompts.padding.tolist() == [False, True] and prompts.rows[1] is None
  assert prompts.budgets(6).tolist() == [6, 0]
  out = generate.rollout_fn(params, prompts, jax.random.key(1)).samples
  # Its budget is 0: done at the prefill, so a partial batch decodes only its real rows.
  assert int(out.lengths_b[0]) > 0 and int(out.lengths_b[1]) == 0
  assert not out.mask_bt[1].any()


def test_voted_answers_are_the_confidence_weighted_winners_of_each_prompts_samples():
  """Each prompt gets the trajectory that the vote elects: the larger summed confidence
  wins over the more frequent answer, no confidence at all is a plain majority, and a
  prompt whose samples give no answer keeps its first sample."""
  import types

  import numpy as np

  tokenizer = tiny_tokenizer()
  config = tiny_model_config(tokenizer)
  examples = [e for e in tiny_world().split("eval") if not e.images][:3]
  answer = lambda word, conf="": (f"<think>a</think> The answer is {word}. "
                                  + (f"<confidence>{conf}</confidence>" if conf else ""))
  samples = [[answer("miner", 2), answer("baker", 9), answer("miner", 3)],
             ["<think>only thinking</think>", "<think>more thinking</think>", ""],
             [answer("miner"), answer("baker"), answer("baker")]]
  width = 64

  def replay(params, prompts, rng):
    texts = [t for i, row in enumerate(prompts.rows) if row is not None
             for t in samples[[e.uid for e in examples].index(row.uid)]]
    ids = [tokenizer.encode(t) for t in texts]
    assert [tokenizer.decode(i) for i in ids] == texts  # The texts round-trip.
    tokens = np.zeros((len(ids), width), np.int32)
    for n, row in enumerate(ids):
      tokens[n, :len(row)] = row
    out = types.SimpleNamespace(tokens_bt=tokens, lengths_b=np.array([len(r) for r in ids]))
    return rollout.Generation(prompts, out, 3)

  generate = generation.Generator(
      config, tokenizer, PipelineConfig(mode="prompt", batch_size=3, max_tokens=160,
                                        max_patches=64, max_images=1), replay)
  texts, lengths = generate.voted(None, examples, jax.random.key(0))
  assert texts == [samples[0][1], samples[1][0], samples[2][1]]
  assert lengths == [len(tokenizer.encode(t)) for t in texts]
  assert generate(None, examples, jax.random.key(0))[0] == [s[0] for s in samples]
