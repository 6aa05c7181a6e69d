"""The policy never writes vision placeholders, in sampling and in training alike."""

import jax
import jax.numpy as jnp
import numpy as np

from models import inputs as model_inputs
from models import presets, vlm
from rl import sampler, train_step
from rl.sampling_methods import Greedy, Temperature

CONFIG = presets.get_preset("tiny", vocab_size=64, image_token_id=60, video_token_id=61,
                            vision_start_token_id=62, vision_end_token_id=63)


def test_sampler_never_emits_a_vision_token_even_when_the_model_prefers_it():
  params = vlm.init_params(CONFIG, jax.random.key(0))
  # Tied embeddings: a huge image-pad embedding makes it the argmax after any token.
  table = params["params"]["embed_tokens"]["embedding"]
  params["params"]["embed_tokens"]["embedding"] = table.at[60].multiply(50.0)
  tokens = np.array([[5, 6, 7, 8]], np.int32)
  inputs, next_position = model_inputs.make_inputs(tokens, np.ones_like(tokens), CONFIG)
  inputs = jax.tree.map(jnp.asarray, inputs)
  logits, _ = vlm.Qwen25VL(CONFIG).apply(params, inputs)
  assert int(jnp.argmax(logits[0, -1])) == 60  # The raw model wants the image pad.
  for method in (Greedy(), Temperature(1.0)):
    out = sampler.sample(params, inputs, next_position, config=CONFIG, num_samples=4,
                         method=method, max_new_tokens=12, rng=jax.random.key(1))
    emitted = np.asarray(out.tokens_bt)[np.asarray(out.mask_bt)]
    assert not np.isin(emitted, [60, 61, 62, 63]).any()
    # The train step scores the same tokens with the same (masked) distribution.
    full = np.concatenate([np.repeat(tokens, 4, 0), np.asarray(out.tokens_bt)], 1)
    full_inputs, _ = model_inputs.make_inputs(full, np.ones_like(full), CONFIG)
    logp, _ = train_step.token_logprobs(CONFIG, params, jax.tree.map(jnp.asarray, full_inputs),
                                        getattr(method, "temperature", 1.0))
    np.testing.assert_allclose(np.asarray(logp)[:, 4:], np.asarray(out.logprobs_bt), atol=1e-5)
