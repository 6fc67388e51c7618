"""Table and figure of the sanity checks (stt/explain/sanity.py), for one run or seed means.

    sanity.md      per explainer and metric, the value at each cascading step (the trained
                   model first), then each block randomised alone, and the block from which
                   its maps stop matching the trained ones;
    cascading.png  rank correlation vs randomised depth, one line per explainer ("where"
                   solid, "when" dashed).

"Stop matching" (`first_mismatch`): the first cascading step whose mean Spearman ρ falls below
`MATCH_THRESHOLD` = 0.5. Adebayo et al. read the curves by eye; 0.5 is our line, stated in each
table, so that the table can say "from which block on" without a figure.
"""

from __future__ import annotations

import math
import re

from etils import epath
import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

MATCH_THRESHOLD = 0.5
_KEY = re.compile(r"^sanity/(cascading|independent)/([^/]+)/(?:([^/]+)/)?([^/]+)$")
_TRAINED_KEY = re.compile(r"^sanity/trained/(?:([^/]+)/)?([^/]+)$")


def parse(metrics: dict) -> tuple[list[str], dict]:
  """(cascade blocks in step order, {(mode, block, explainer, metric): value}); the trained
  model is mode 'trained', block None; accuracy has explainer None."""
  blocks, values = list(metrics.get("sanity/blocks", [])), {}
  for key, value in metrics.items():
    trained = _TRAINED_KEY.match(key)
    if trained:
      values[("trained", None, trained.group(1), trained.group(2))] = value
      continue
    match = _KEY.match(key)
    if match:
      mode, block, explainer, metric = match.groups()
      values[(mode, block, explainer, metric)] = value
      if mode == "cascading" and block not in blocks:
        blocks.append(block)
  return blocks, values


def explainers_in(values: dict) -> list[str]:
  return list(dict.fromkeys(key[2] for key in values if key[2] is not None))


def first_mismatch(blocks: list[str], values: dict, explainer: str, metric: str) -> str:
  """The first cascading block at which ρ < MATCH_THRESHOLD; 'none' if it never does, '—' if
  the metric is not measured."""
  measured = False
  for block in blocks:
    value = values.get(("cascading", block, explainer, metric))
    if value is None or not math.isfinite(value):
      continue
    measured = True
    if value < MATCH_THRESHOLD:
      return block
  return "none" if measured else "—"


def _cell(value) -> str:
  return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"


def markdown(
    blocks: list[str], values: dict, title: str = "Sanity checks", texts: dict | None = None
) -> str:
  """The table of the module docstring from `values` {(mode, block, explainer, metric): value}
  (seed means, for the stop-matching column); `texts` replaces the cells' text where it has the
  key (e.g. "mean ± std")."""
  fmt_key = lambda key: (texts or {}).get(key) or _cell(values.get(key))
  independent = [b for b in dict.fromkeys(k[1] for k in values if k[0] == "independent")]
  cascade_header = " | ".join(f"→ {block}" for block in blocks)
  alone_header = " | ".join(f"{block} alone" for block in independent)
  lines = [
      f"## {title}",
      "",
      "Cascading randomisation from the top block down (`→ b`: every block from the top to b "
      "re-initialised), then each block alone. ρ: Spearman rank correlation of |map| with "
      f"the trained model's; 'stops matching': first cascade step with ρ < {MATCH_THRESHOLD}.",
      "",
      f"| explainer | metric | trained | {cascade_header} | {alone_header} | stops matching |",
      "|---" * (4 + len(blocks) + len(independent)) + "|",
  ]
  row = lambda explainer, metric: (
      [fmt_key(("trained", None, explainer, metric))]
      + [fmt_key(("cascading", b, explainer, metric)) for b in blocks]
      + [fmt_key(("independent", b, explainer, metric)) for b in independent]
  )
  lines.append("| (model) | accuracy | " + " | ".join(row(None, "accuracy")) + " | |")
  for explainer in explainers_in(values):
    for metric in ("where_spearman", "when_spearman", "pointing_spatial", "pointing_temporal"):
      cells = row(explainer, metric)
      if metric.endswith("spearman"):
        cells[0] = "1" if any(c != "—" for c in cells[1:]) else "—"
        mismatch = first_mismatch(blocks, values, explainer, metric)
      else:
        mismatch = ""
      if all(c == "—" for c in cells[1:]):
        continue  # not applicable (rollout's "where" on STAN)
      lines.append(f"| {explainer} | {metric} | " + " | ".join(cells) + f" | {mismatch} |")
  return "\n".join(lines) + "\n"


def figure(path: epath.Path, blocks: list[str], values: dict, title: str = "") -> None:
  """Rank correlation vs cascading depth per explainer (where solid, when dashed)."""
  fig, ax = plt.subplots(figsize=(1.2 * len(blocks) + 3, 3.6))
  steps = ["trained"] + [f"→ {block}" for block in blocks]
  for index, explainer in enumerate(explainers_in(values)):
    color = f"C{index}"
    for metric, style in (("where_spearman", "-"), ("when_spearman", "--")):
      series = [values.get(("cascading", b, explainer, metric)) for b in blocks]
      if all(v is None or not math.isfinite(v) for v in series):
        continue
      y = [1.0] + [float("nan") if v is None else v for v in series]
      label = f"{explainer} ({metric.split('_')[0]})"
      ax.plot(range(len(steps)), y, style, marker="o", color=color, label=label)
  ax.axhline(MATCH_THRESHOLD, color="grey", linewidth=0.8, linestyle=":")
  ax.set_xticks(range(len(steps)), steps, rotation=30, ha="right")
  ax.set_ylabel("Spearman ρ with trained maps")
  ax.set_ylim(-0.2, 1.05)
  ax.set_title(title or "Cascading parameter randomisation")
  ax.legend(fontsize=7, loc="lower left")
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open("wb") as file:
    fig.savefig(file, dpi=120)
  plt.close(fig)


def write(directory: epath.Path, metrics: dict) -> None:
  """sanity.md and cascading.png of one run's `sanity/...` metrics."""
  blocks, values = parse(metrics)
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "sanity.md").write_text(markdown(blocks, values))
  figure(directory / "cascading.png", blocks, values)
