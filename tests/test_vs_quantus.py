"""benchmarks/vs_quantus.py on a tiny case: our metrics and Quantus's agree where their
definitions coincide (needs the `peers` extra: pip install -e ".[peers]")."""

import json
import pathlib
import sys

import pytest

pytest.importorskip("quantus")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import vs_quantus  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.slow
def test_ours_and_quantus_agree_on_a_tiny_case(capsys):
  assert vs_quantus.main(["--test_videos=8", "--train_videos=64", "--train_steps=30"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["test_videos"] == 8 and result["trials"] == 80
  # Pointing: the same hit on every trial (ties, the stated difference, do not occur here).
  assert result["pointing"]["max_abs_diff"] == 0.0
  assert result["pointing"]["ours"] == pytest.approx(result["pointing"]["ours_summary"])
  # Relevance mass: float rounding only.
  assert result["relevance_mass"]["max_abs_diff"] < 1e-6
  assert 0.0 < result["relevance_mass"]["ours"] < 1.0
  # Region perturbation: the same probabilities after the same removals (k = round(p * 49)).
  perturbation = result["region_perturbation"]
  assert perturbation["removed_cells"] == [0, 5, 10, 15, 20, 25, 29, 34, 39, 44]
  assert perturbation["max_abs_diff"] < 1e-5
  assert 0.0 < perturbation["ours"] < 1.0
  assert result["seconds_ours"] > 0 and result["seconds_quantus"] > 0
  assert result["speedup"] == pytest.approx(result["seconds_quantus"] / result["seconds_ours"])


def test_bad_arguments_are_named():
  with pytest.raises(SystemExit):
    vs_quantus.parse_args(["--test_videos=0"])
