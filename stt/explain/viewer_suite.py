"""The suite page of `python -m stt.reproduce`: its tables as HTML, linked to every run's viewer.

    <workdir>/index.html

The recognition, perturbation and pointing tables (the long-form cells of
stt/reproduce_tables.py, mean ± std over n seeds), then the figures of figures/. Every cell of
a (model, explainer) table links to the viewer of that model's first run that has one
(`<row>/seed<k>/viewer/index.html`) with that explainer selected (`#explainer=<name>`), and the
seeds' own viewers are linked after the model's name. Static HTML, opened from disk.
"""

from __future__ import annotations

import html
import os
import urllib.parse

from etils import epath

from stt.explain import suite_reports

TABLES = (
    ("recognition", "Recognition", False),
    ("perturbation", "Perturbation AUC (positive: lower is better; negative: higher)", True),
    ("pointing", "Pointing and localisation (higher is better)", True),
)
VIEWER_INDEX = ("viewer", "index.html")
_STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
table { border-collapse: collapse; margin: 6px 0 18px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th:first-child, td:first-child, td.explainer { text-align: left; }
.sd { color: #777; font-size: 11px; }
img { max-width: 100%; margin: 4px 0 12px; border: 1px solid #ddd; }
"""


def _format(cell: dict | None) -> str:
  if cell is None or cell.get("mean") is None:
    return "—"
  mean, std = cell["mean"], cell.get("std") or 0.0
  digits = 3 if abs(mean) <= 1 else 1
  return f"{mean:.{digits}f} <span class=sd>± {std:.{digits}f} (n={cell.get('n', 0)})</span>"


def viewer_links(workdir: epath.Path, run_dirs: dict[str, list]) -> dict[str, list[str]]:
  """{row: [relative path of each of its runs' viewer index.html that exists]}."""
  links = {}
  for row, directories in run_dirs.items():
    found = [epath.Path(d).joinpath(*VIEWER_INDEX) for d in directories]
    links[row] = [
        os.path.relpath(str(path), str(workdir)).replace(os.sep, "/")
        for path in found
        if path.exists()
    ]
  return links


def _linked(text: str, href: str | None) -> str:
  return f'<a href="{html.escape(href)}">{text}</a>' if href else text


def _explainer_href(links: list[str], explainer: str | None) -> str | None:
  if not links:
    return None
  if explainer is None:
    return links[0]
  return links[0] + "#" + urllib.parse.urlencode({"explainer": explainer})


def _table(rows: list[dict], table: str, by_explainer: bool, links: dict) -> str:
  cells = [
      r for r in rows if r["table"] == table and r["split"] == "test" and not r.get("randomised")
  ]
  if not cells:
    return ""
  metrics = list(dict.fromkeys(r["metric"] for r in cells))
  keys = list(dict.fromkeys((r["model"], r["explainer"] if by_explainer else None) for r in cells))
  index = {(r["model"], r["explainer"] if by_explainer else None, r["metric"]): r for r in cells}
  head = "<tr><th>model</th>" + ("<th>explainer</th>" if by_explainer else "")
  head += "".join(f"<th>{html.escape(m)}</th>" for m in metrics) + "</tr>"
  body = []
  for model, explainer in keys:
    # The chance and centre-prior rows are computed from the annotations: no maps to show.
    reference = explainer in suite_reports.BASELINE_ROWS
    href = None if reference else _explainer_href(links.get(model, []), explainer)
    seeds = " ".join(
        f'<a href="{html.escape(link)}">s{k}</a>' for k, link in enumerate(links.get(model, []))
    )
    line = f"<tr><td>{html.escape(model)} <span class=sd>{seeds}</span></td>"
    if by_explainer:
      line += f'<td class="explainer">{html.escape(str(explainer))}</td>'
    values = [index.get((model, explainer, m)) for m in metrics]
    line += "".join(
        f"<td>{_linked(_format(v), href if v and v.get('mean') is not None else None)}</td>"
        for v in values
    )
    body.append(line + "</tr>")
  return "<table>" + head + "".join(body) + "</table>"


def _sanity_table(rows: list[dict], links: dict) -> str:
  """Table 4: each (model, explainer) with its parameter blocks randomised (cascading from the
  top: the blocks named), its metrics as mean ± std; a cell opens the run's viewer."""
  cells = [r for r in rows if r["table"] == "sanity" and r["split"] == "test"]
  if not cells:
    return ""
  metrics = list(dict.fromkeys(r["metric"] for r in cells))
  blocks = lambda r: ", ".join(r.get("randomised") or ()) or "none"
  models = list(dict.fromkeys(r["model"] for r in cells))
  depth = lambda r: len(r.get("randomised") or ())
  ordered = sorted(cells, key=lambda r: (models.index(r["model"]), depth(r)))  # stable: cascade
  keys = list(dict.fromkeys((r["model"], r["explainer"], blocks(r)) for r in ordered))
  index = {(r["model"], r["explainer"], blocks(r), r["metric"]): r for r in cells}
  head = "<tr><th>model</th><th>explainer</th><th>randomised</th>"
  head += "".join(f"<th>{html.escape(m)}</th>" for m in metrics) + "</tr>"
  body = []
  for model, explainer, randomised in keys:
    href = _explainer_href(links.get(model, []), explainer)
    line = (
        f"<tr><td>{html.escape(model)}</td><td class=explainer>{html.escape(str(explainer or '—'))}"
    )
    line += f"</td><td class=explainer>{html.escape(randomised)}</td>"
    values = [index.get((model, explainer, randomised, m)) for m in metrics]
    line += "".join(
        f"<td>{_linked(_format(v), href if v and v.get('mean') is not None else None)}</td>"
        for v in values
    )
    body.append(line + "</tr>")
  return "<table>" + head + "".join(body) + "</table>"


def write(workdir: epath.Path, rows: list[dict], run_dirs: dict[str, list]) -> epath.Path:
  """Writes `<workdir>/index.html` from the suite's cells (reproduce_tables.summary_rows) and
  its runs ({row: [run directory, ...]}); returns its path."""
  workdir = epath.Path(workdir)
  links = viewer_links(workdir, run_dirs)
  parts = [
      "<!doctype html><html lang=en><head><meta charset=utf-8><title>stt suite</title>",
      f"<style>{_STYLE}</style></head><body><h1>Suite: {html.escape(workdir.name)}</h1>",
      "<p>Mean ± sample std over seeds (n). A table cell opens the viewer of that model's first "
      "seed with that explainer; s0, s1, ... open each seed's viewer.</p>",
  ]
  for table, title, by_explainer in TABLES:
    text = _table(rows, table, by_explainer, links)
    if text:
      parts += [f"<h2>{html.escape(title)}</h2>", text]
  sanity = _sanity_table(rows, links)
  if sanity:
    parts += [
        "<h2>Sanity checks: the trained maps against randomised parameter blocks</h2>",
        sanity,
    ]
  figures = sorted((workdir / "figures").glob("*.png")) if (workdir / "figures").exists() else []
  if figures:
    parts.append("<h2>Figures</h2>")
    parts += [
        f'<div><img src="figures/{html.escape(path.name)}" alt="{html.escape(path.stem)}"></div>'
        for path in figures
    ]
  parts.append("</body></html>")
  path = workdir / "index.html"
  path.write_text("\n".join(parts))
  return path
