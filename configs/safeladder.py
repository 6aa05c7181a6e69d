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
on 2 cores: `make demo` measured 13 min 52 s to 14 min 48 s on earlier machines, 14 min
21 s on the one before the latest and 11 min 32 s on the latest (fresh workdir, nothing
else running); see the report's time table.
The numbers depend on the machine (floating-point order), not on the run: on the latest
machine two runs gave the same table. There: after M³-RL both axes above the CoT-SFT point
(safety 0.18 -> 0.19, capability 0.25 -> 0.32, general accuracy 38 -> 48%); after CALE 29%
shorter responses at mean accuracy 25.4 -> 23.6% (value accuracy 38 -> 9%); after search
RL a false-certain rate of 6% (from 59%). An earlier machine: safety 0.18 -> 0.22, CALE
24% shorter (25.0 -> 25.9%), false-certain 81 -> 0%. The latest machine (same code):
safety 0.21 -> 0.16 and capability 0.24 -> 0.25 after M³-RL, CALE 18% shorter at mean
accuracy 20.2 -> 27.1%, search-only facts 0 -> 5% and false-certain 75 -> 53% after
search RL. Not reached: the tiny model does not
learn to copy names from its prompt or from a search result in this budget (see
config.model.initializer_range), so harmful prompts get no logical answer before CALE,
and search-only facts stay unanswered. `--config.sft.copy_rows=2` (data/copy_task.py)
teaches copying and the SFT policy then searches by the right name, at +130 s and with
no report row reliably higher (config.sft.copy_rows).
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
