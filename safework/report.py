"""The ladder's report: `report.md`, the AI-45° plot and the reward curves as PNG.

The AI-45° plot puts each checkpoint at (capability, safety) (see safework/evaluation.py
for both scores); coevolution is movement up and to the right along the diagonal.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # Files only: no display on a server or in CI.
import matplotlib.pyplot as plt  # noqa: E402

ROWS = (
    ("safety", "safety axis", "{:.3f}"), ("capability", "capability axis", "{:.3f}"),
    ("safety_score", "safety score", "{:.3f}"),
    ("safe_rate", "safe rate on harmful prompts", "{:.1%}"),
    ("over_refusal_rate", "over-refusal rate on benign prompts", "{:.1%}"),
    ("value_accuracy", "value accuracy", "{:.1%}"),
    ("general_accuracy", "general accuracy", "{:.1%}"),
    ("knowledge_accuracy", "knowledge accuracy", "{:.1%}"),
    ("knowledge_accuracy_memorised", "  memorised facts", "{:.1%}"),
    ("knowledge_accuracy_search_only", "  search-only facts", "{:.1%}"),
    ("search_call_rate", "    called search", "{:.1%}"),
    ("search_found_rate", "    shown the fact's document", "{:.1%}"),
    ("search_read_accuracy", "    right when shown it", "{:.1%}"),
    ("false_certain_rate", "false-certain rate", "{:.1%}"),
    ("response_length", "mean response length, tokens", "{:.1f}"),
    ("format_rate", "well-formed responses", "{:.1%}"),
)


def _cell(value, fmt: str) -> str:
  return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else \
      fmt.format(value)


def _row(key: str, title: str, fmt: str, metrics: Sequence[Mapping[str, float]]) -> str:
  """One table row. Where the metrics give `n/<key>` (the prompts a value is a mean over),
  the title says it when every checkpoint has the same count, else each cell does."""
  counts = [m.get(f"n/{key}") for m in metrics]
  cells = [_cell(m.get(key), fmt) for m in metrics]
  if all(n is not None for n in counts) and len(set(counts)) == 1:
    title = f"{title} (n={counts[0]:.0f})"
  else:
    cells = [c if n is None or c == "–" else f"{c} (n={n:.0f})" for c, n in zip(cells, counts)]
  return f"| {title} | " + " | ".join(cells) + " |"


def label_offsets(names: Sequence[str], xs: Sequence[float], ys: Sequence[float],
                  scale: float = 330.0) -> list[tuple[int, int]]:
  """Each point's label offset (points), so that close checkpoints' labels do not overlap:
  below and right of the point where free, else the nearest free line above or below.
  `scale` is points per axis unit; a label is taken as 5 points a character by 9."""
  placed: list[tuple[float, float, float, float]] = []  # Label boxes: x0, y0, x1, y1.
  offsets = []
  for name, x, y in zip(names, xs, ys):
    for dy in (-10, 4, -20, 14, -30, 24, -40, 34, -50):
      box = (x * scale + 6, y * scale + dy, x * scale + 6 + 5 * len(name), y * scale + dy + 9)
      if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                 for b in placed):
        break
    placed.append(box)
    offsets.append((6, dy))
  return offsets


def ai45_plot(points: Sequence[tuple[str, Mapping[str, float]]], path: pathlib.Path) -> None:
  fig, ax = plt.subplots(figsize=(5.5, 5.5))
  ax.plot([0, 1], [0, 1], linestyle="--", color="0.7", label="AI-45° line")
  xs = [m["capability"] for _, m in points]
  ys = [m["safety"] for _, m in points]
  ax.plot(xs, ys, "-o", color="tab:blue")
  for (name, _), x, y, offset in zip(points, xs, ys, label_offsets(
      [name for name, _ in points], xs, ys)):
    ax.annotate(name, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
  ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="capability (general + knowledge accuracy)",
         ylabel="safety (safety score + value accuracy)", title="SafeLadder: AI-45° plot")
  ax.legend(loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def reward_plot(curves: Mapping[str, Sequence[tuple[int, float]]], path: pathlib.Path,
                oracle_curves: Mapping[str, Sequence[tuple[int, float]]] | None = None) -> None:
  """The reward per RL iteration, one colour per stage; dashed in the same colour, the
  reward with the world's oracle in the judges' place (safework/audit.py) where logged."""
  fig, ax = plt.subplots(figsize=(7, 4))
  offset = 0
  for stage, curve in curves.items():
    if not curve:
      continue
    steps = [offset + s for s, _ in curve]
    (line,) = ax.plot(steps, [r for _, r in curve], label=stage)
    oracle = (oracle_curves or {}).get(stage)
    if oracle:
      ax.plot([offset + s for s, _ in oracle], [r for _, r in oracle], "--",
              color=line.get_color(), label=f"{stage} (oracle)")
    offset = steps[-1]
  ax.set(xlabel="RL iteration (stages in sequence)", ylabel="mean reward", title="Reward")
  if ax.lines:  # A ladder with no RL stage yet has no curve to name.
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def reward_curve(metrics_jsonl: pathlib.Path, key: str = "reward/total"
                 ) -> list[tuple[int, float]]:
  if not metrics_jsonl.exists():
    return []
  rows = [json.loads(line) for line in metrics_jsonl.read_text().splitlines() if line]
  return [(int(r["step"]), float(r[key])) for r in rows if key in r]


def write(directory: pathlib.Path, points: Sequence[tuple[str, Mapping[str, float]]],
          curves: Mapping[str, Sequence[tuple[int, float]]],
          judge_table: str | None = None, timings: Mapping[str, float] | None = None,
          notes: Sequence[str] = (), compiling: Mapping[str, float] | None = None,
          oracle_curves: Mapping[str, Sequence[tuple[int, float]]] | None = None,
          refresh_table: str | None = None, scored_by: str = "exactly by the world's oracle"
          ) -> pathlib.Path:
  """Writes report.md, ai45.png and rewards.png into `directory`; returns report.md.

  `timings` are each stage's wall seconds and `compiling` (optional) the seconds of them
  that XLA spent compiling. Stages that ran beside each other both count in the total."""
  directory.mkdir(parents=True, exist_ok=True)
  ai45_plot(points, directory / "ai45.png")
  reward_plot(curves, directory / "rewards.png", oracle_curves)
  names = [name for name, _ in points]
  lines = ["# SafeLadder report", "",
           f"Held-out evaluation after each rung, scored {scored_by}.", "",
           "| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  lines += [_row(key, title, fmt, [m for _, m in points]) for key, title, fmt in ROWS]
  lines += ["", "![AI-45° plot](ai45.png)", "", "![Rewards](rewards.png)", ""]
  if notes:
    lines += ["## Findings", ""] + [f"- {n}" for n in notes] + [""]
  if judge_table:
    lines += ["## Judges (held-out accuracy against the oracle)", "", judge_table, ""]
  if refresh_table:
    lines += ["## Judge refresh (accuracy on held-out responses of the CoT-SFT policy)", "",
              refresh_table, ""]
  if timings:
    compiling = compiling or {}
    cell = lambda seconds: "–" if seconds is None else f"{seconds:.0f}"
    lines += ["## Time", "", "| stage | seconds | of which compiling |", "|---|---|---|"]
    lines += [f"| {k} | {v:.0f} | {cell(compiling.get(k))} |" for k, v in timings.items()]
    known = [compiling[k] for k in timings if k in compiling]
    lines += [f"| total | {sum(timings.values()):.0f} | "
              f"{cell(sum(known) if known else None)} |", ""]
  lines += ["TensorBoard: `tensorboard --logdir <workdir>` (each stage writes `<stage>/metrics`)."]
  path = directory / "report.md"
  path.write_text("\n".join(lines) + "\n")
  return path
