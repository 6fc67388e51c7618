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


def blocks_above(metrics: dict) -> dict[tuple[str, str], list[str]]:
  """{(explainer, 'where' | 'when'): the blocks above the layer that makes its map} from a
  run's `sanity/above/...` keys (sanity.blocks_above_maps)."""
  found = {}
  for key, value in metrics.items():
    parts = key.split("/")
    if len(parts) == 4 and parts[:2] == ["sanity", "above"]:
      found[(parts[2], parts[3])] = list(value)
  return found


def by_construction(mode: str, block: str | None, blocks: list[str], above: list[str]) -> bool:
  """Whether the step (mode, block) randomises only blocks in `above` (those above the layer
  that makes the map): ρ = 1 there by construction. blocks: the cascade, top first."""
  if mode == "cascading":
    return set(blocks[: blocks.index(block) + 1]) <= set(above)
  return mode == "independent" and block in above


def constructed_keys(blocks: list[str], values: dict, above: dict) -> set:
  """The keys (mode, block, explainer, metric) of `values` whose Spearman ρ is 1 by
  construction (`by_construction`), from `blocks_above`'s {(explainer, map): blocks}."""
  return {
      key
      for key in values
      if "spearman" in key[3]
      and key[0] != "trained"
      and by_construction(key[0], key[1], blocks, above.get((key[2], key[3].split("_")[0]), []))
  }


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


CONSTRUCTED_MARK = "†"
METRICS = (
    "where_spearman",
    "where_spearman_signed",
    "when_spearman",
    "when_spearman_signed",
    "pointing_spatial",
    "pointing_temporal",
)


def markdown(
    blocks: list[str],
    values: dict,
    title: str = "Sanity checks",
    texts: dict | None = None,
    constructed: set | None = None,
) -> str:
  """The table of the module docstring from `values` {(mode, block, explainer, metric): value}
  (seed means, for the stop-matching column); `texts` replaces the cells' text where it has the
  key (e.g. "mean ± std"); the cells of `constructed` keys (`constructed_keys`) carry
  CONSTRUCTED_MARK: 1 by construction."""
  constructed = constructed or set()

  def fmt_key(key):
    text = (texts or {}).get(key) or _cell(values.get(key))
    return f"{text} {CONSTRUCTED_MARK}" if key in constructed and text != "—" else text

  independent = [b for b in dict.fromkeys(k[1] for k in values if k[0] == "independent")]
  cascade_header = " | ".join(f"→ {block}" for block in blocks)
  alone_header = " | ".join(f"{block} alone" for block in independent)
  lines = [
      f"## {title}",
      "",
      "Cascading randomisation from the top block down (`→ b`: every block from the top to b "
      "re-initialised), then each block alone. ρ: Spearman rank correlation of |map| "
      "(`_spearman`) and of the signed map (`_spearman_signed`) with the trained model's; "
      f"'stops matching': first cascade step with ρ < {MATCH_THRESHOLD}. {CONSTRUCTED_MARK}: 1 "
      "by construction, only blocks above the layer that makes the map are randomised (not a "
      "failed check).",
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
    for metric in METRICS:
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
  constructed = constructed_keys(blocks, values, blocks_above(metrics))
  (directory / "sanity.md").write_text(markdown(blocks, values, constructed=constructed))
  figure(directory / "cascading.png", blocks, values)
