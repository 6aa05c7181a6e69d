"""The whole SafeLadder (SafeWork-R1, arXiv 2507.18576): judge training -> CoT-SFT ->
M³-RL stage A -> M³-RL stage B -> Safe-and-Efficient RL (CALE) -> Deliberative-Search
RL, with a held-out evaluation after every rung.

  python -m launch.main --config=configs/safeladder.py:runlocal --workdir=/tmp/safeladder
  python -m launch.main --config=configs/safeladder.py:model=7b --workdir=gs://b/run \\
      --config.model.checkpoint=/ckpt/Qwen2.5-VL-7B-Instruct --config.data.rl_jsonl=...

`runlocal` trains the tiny model on the SafeLadder world on a CPU (`make demo`) and adds
one rung of ours after CoT-SFT, `judge_refresh`: the judges are fine-tuned on the SFT
policy's own answers, labelled by the world's oracle (judges trained only on the world's
clean answers agreed with the oracle on 25-66% of the policy's knowledge answers). It
writes report.md, ai45.png (capability against safety, one point per checkpoint) and
rewards.png (each stage's reward, and dashed the same reward with the oracle in the
judges' place) to the workdir, with TensorBoard logs per stage. The target is 15 minutes
on 2 cores: `make demo` measured 10 min 59 s and 11 min 27 s on the latest machine (fresh workdir,
nothing else running; 8 min 29 s to 11 min 18 s on the machines of the sessions before,
up to 14 min 48 s on earlier machines and settings); see the report's time table. The
numbers can depend on the machine (floating-point order), not on the run: three runs on
one machine gave the same table, as did the last five sessions' machines. There: after
M³-RL both axes above the CoT-SFT point (safety 0.18 -> 0.19, capability 0.25 -> 0.30,
general accuracy 38 -> 47%); after CALE 26% shorter responses at mean accuracy 24.1 ->
32.7% (value 38 -> 47%); after search RL a false-certain rate of 0% (from 66%),
search-only facts 5% -> 5% (1 of 19 prompts before and after).
Not reached: the tiny model does not learn to copy names from its prompt or from a search
result in this budget (see config.model.initializer_range), so harmful prompts get no
logical answer before CALE, search-only facts stay unanswered, and neither the policy
nor the value judge learns which option a letter names (the value judge's letter-swap
check in the report). `--config.sft.copy_rows=2` (data/copy_task.py) trains copying, and
the greedy SFT policy is then shown the fact's document on a quarter to a half of the
search-only prompts (the report's search funnel), but the copy itself is barely learned
(a held-out copied token at p 0.013): sampled at temperature 1 the policy is almost never
shown it, so the RL rungs have no right search to reinforce and stop searching
(config.sft.copy_rows).
The closest run yet (not the default): one hit per search (`world.search_top_k=1`,
`search.search.top_k=1`, so the value is in the only snippet), `world.practice_entities=400`
and `sft_search_fraction=0.6` (no practice fact can be memorised), `sft.copy_rows=2`,
`copy_alphabet=6` and `sft.steps=1600`. CoT-SFT then searches on every search-only prompt,
is shown the document on 95% and answers 4 of 19 right (21%; shown 47-58% and 1 of 19 at
800 steps); sampled at temperature 1 on search-RL prompts it is shown the document on 26%
(3% at 800 steps) and right on 18% of those; M³-RL A raises search-only facts to 6 of 19.
The other rungs break: CoT-SFT takes 400 s (the demo would take about 14 minutes), general
accuracy falls under M³-RL (52 -> 41%), CALE at lr 4e-4 collapses (12 tokens, every
accuracy 0), and at 2e-4 it stops searching (calls 84% -> 0%, also with the search tool
and search prompts in its rollouts), after which search RL does not search either.
Nor does naming the entity help (measured, not kept): with each search-only entity's other
fact taught by CoT-SFT, so that the policy has written its name, and a value word CoT-SFT
writes, the policy still searches for an entity it memorised (for Noko's capital, `job of
Luta` at initializer_range 0.02, `capital of Vino` at 0.07: shown 0% at both), and that
world moved every rung (CALE fell to general accuracy 7%). Nor does spelling every name in
shared syllable pieces (`NoKoRi`: a search-only name is then a new arrangement of pieces
the policy writes, not a piece it never wrote): the greedy policy searches for one fixed
entity (shown 0%, sampled 0.3%); with the closest run's settings at 800 SFT steps it
copies a name's first syllables (shown 18% greedy, 1% sampled; at 1,600 steps 32% and
11%, against 95% and 26% with whole-word names). Nor does a copy-pretrained base (1,200
dense copy updates, data/copy_task.py, p 0.80): CoT-SFT from it is a stronger policy
(general accuracy 50%) but still searches for memorised entities (shown 0%, with 40 or 400
practice entities), and M³-RL then stops searching. With copy rows in that CoT-SFT too
(`sft.copy_rows=2`, `copy_alphabet=6`, 800 steps) CoT-SFT is the best measured: shown the
document on 74% of search-only prompts, 4 of 19 right, value 75%, safety axis 0.49; but
M³-RL A stops searching (calls 90% -> 0%), also with the search rollout and search prompts
in its mix (at temperature 1, 11 of its first 28 calls are malformed and lose the format
reward; at 0.6, 3 of 32, and the calls still fall to 0 within five iterations), and CALE
collapses. The reward turns it away: on 256 sampled search-prompt answers of that CoT-SFT
policy, the oracle finds 21% of searched answers right and 2% of the others, but the tiny
knowledge judge scores them 0.16 and 0.24 (it cannot check an unseen name against the gold,
the same copying the policy lacks). An exact-match rule beside it (measured, not kept)
keeps M³-RL A searching longer, but knowledge accuracy still falls to 0 by CALE.
`model=7b|72b` are the production shapes; data and checkpoints come from the paths.
"""

from configs import base, efficient, judges, m3rl, search, sft


def get_config(arg=None):
  args = base.parse(arg)
  c = base.common(args)
  # judge_refresh (ours) labels the policy's samples with the world's oracle: runlocal only.
  c.stages = ("judges", "sft") + (("judge_refresh",) if args["runlocal"] else ()) + (
      "m3rl_a", "m3rl_b", "efficient", "search")
  c.judges = judges.section(args)
  c.judge_refresh = judges.refresh(args)
  c.sft = sft.section(args)
  c.m3rl_a = m3rl.stage_a(args)
  c.m3rl_b = m3rl.stage_b(args)
  c.efficient = efficient.section(args)
  c.search = search.section(args)
  return c
