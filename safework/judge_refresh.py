"""(ours) Judges refreshed on the policy's own samples, labelled by the world's oracle.

Judges trained on the world's clean responses pay for the early policy's off-template
answers: in the runlocal ladder the oracle audit (safework/audit.py) measured the
knowledge judge agreeing with the oracle on 25-66% of M³-RL samples and the value judge on
38-69%, while both were above 80% on held-out world responses. RL then optimises the
judges' mistakes (value accuracy fell from 63% to 34% in M³-RL B at lr 2e-4).

The judge-refresh rung runs after CoT-SFT: it samples the policy on RL prompts of the
judge-scored labels, labels every response with the oracle (the world's stand-in for the
annotators who label the authors' judge data), and fine-tunes each judge group on those
labels, mixed with a replay of its original training data. A share of the sampled
prompts is held out: the judges are measured on the policy's responses to them before
and after.

  examples = policy_judge_examples(prompts, responses, judges_of_label)
  train, held_out = split_by_prompt(examples, held_out_fraction=0.25)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from data import world as world_lib
from data.example import Example


def policy_judge_examples(prompts: Sequence[Example], responses: Sequence[Sequence[str]],
                          judges_of_label: Callable[[str], Sequence[str]]) -> list[Example]:
  """Judge-training examples of sampled responses, with the oracle's verdicts.

  Args:
    prompts: world prompts (`meta['family']` set).
    responses: per prompt, its sampled responses.
    judges_of_label: the judges the reward recipe applies to a label.

  Returns:
    One example per (prompt, response, judge): the prompt with the response, and
    `meta['judge']`, `meta['verdict']` (the oracle's) and `meta['policy_prompt']` (the
    prompt's uid, for splitting by prompt).

  Raises:
    ValueError: a prompt that is not a world prompt, or a judge the oracle cannot label for
      the prompt's family.
  """
  if len(prompts) != len(responses):
    raise ValueError(f"{len(prompts)} prompts but {len(responses)} response lists")
  out = []
  for prompt, texts in zip(prompts, responses):
    if prompt.meta.get("family") not in world_lib.FAMILIES:
      raise ValueError(f"prompt {prompt.uid!r} is not a world prompt; only the world's oracle "
                       "can label the policy's samples")
    for g, text in enumerate(texts):
      verdicts = world_lib.label(prompt, text)
      for judge in judges_of_label(prompt.label):
        meta = dict(prompt.meta, judge=judge, verdict=verdicts.judge(judge),
                    policy_prompt=prompt.uid)
        out.append(Example(f"{prompt.uid}/policy{g}/{judge}", prompt.label, prompt.question,
                           prompt.images, prompt.gold, text, prompt.system, meta))
  return out


def split_by_prompt(examples: Sequence[Example], held_out_fraction: float, seed: int = 0
                    ) -> tuple[list[Example], list[Example]]:
  """(train, held_out): the examples of a random `held_out_fraction` of the prompts
  (`meta['policy_prompt']`) are held out, so no held-out prompt is trained on."""
  if not 0.0 <= held_out_fraction < 1.0:
    raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
  uids = sorted({e.meta["policy_prompt"] for e in examples})
  order = np.random.default_rng(seed).permutation(len(uids))
  held = {uids[i] for i in order[:round(held_out_fraction * len(uids))]}
  train = [e for e in examples if e.meta["policy_prompt"] not in held]
  return train, [e for e in examples if e.meta["policy_prompt"] in held]


def replay(examples: Sequence[Example], judges: Sequence[str], count: int, seed: int = 0
           ) -> list[Example]:
  """`count` examples of `judges` drawn without replacement (all of them when fewer)."""
  mine = [e for e in examples if e.meta.get("judge") in judges]
  if count >= len(mine):
    return mine
  order = np.random.default_rng(seed).permutation(len(mine))[:count]
  return [mine[i] for i in sorted(order)]


def verdict_counts(examples: Sequence[Example]) -> dict[str, dict[str, int]]:
  """judge -> verdict -> count (for the record)."""
  out: dict[str, dict[str, int]] = {}
  for e in examples:
    per = out.setdefault(e.meta["judge"], {})
    per[e.meta["verdict"]] = per.get(e.meta["verdict"], 0) + 1
  return {j: dict(sorted(v.items())) for j, v in sorted(out.items())}


def accuracy_table(before: Mapping[str, float], after: Mapping[str, float],
                   examples: Mapping[str, int]) -> str:
  """A markdown table of each judge's accuracy on held-out policy responses."""
  lines = ["| judge | held-out policy responses | before | after |", "|---|---|---|---|"]
  for judge in before:
    lines.append(f"| {judge} | {examples.get(judge, 0)} | {before[judge]:.3f} | "
                 f"{after[judge]:.3f} |")
  return "\n".join(lines)
