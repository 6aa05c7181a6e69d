"""A shrunken `runlocal` ladder: every rung for a couple of steps on a tiny world."""

from configs import safeladder

WORLD = dict(seed=11, sft_examples=160, rl_examples=48, search_rl_examples=12, eval_examples=48,
             judge_train_examples=64, judge_eval_examples=24, known_entities=6,
             practice_entities=6, search_rl_entities=3, search_eval_entities=3,
             distractor_entities=6)


def shrunken(iterations: int = 1):
  c = safeladder.get_config("runlocal")
  c.world.update(WORLD)
  c.tokenizer.vocab_size = 400
  c.judges.update(steps=2, batch_size=8, max_tokens=192, eval_examples=8)
  c.sft.update(steps=2, batch_size=2, max_tokens=256, checkpoint_every=1, copy_rows=1)
  c.judge_refresh.update(prompts=4, num_samples=2, generation_batch=4, max_new_tokens=32,
                         steps=2, batch_size=4)
  for stage in ("m3rl_a", "m3rl_b", "efficient", "search"):
    c[stage].update(iterations=iterations, prompts_per_iteration=2, num_samples=2,
                    max_new_tokens=32, mixture_size=16, checkpoint_every=1)
  c.search.search.update(max_tool_tokens=32)
  c.efficient.loss_config.max_response_length = 32
  c.eval.update(num_examples=4, batch_size=4, max_new_tokens=32)
  return c
