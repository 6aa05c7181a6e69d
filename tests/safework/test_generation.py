"""The generator over world prompts: order, partial batches, one response per prompt."""

import jax

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
