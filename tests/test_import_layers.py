"""The project's imports run one way, lowest layer first, and form no cycle.

    data_pipelines  <-  configs  (which also read the core's list of task names, stt.tasks)
    data_pipelines  <-  stt core (models, datasets, input pipeline, state, ...)
                    <-  stt.explain  <-  trainer and entry points (train, split_evaluator,
                                                   main, ...)

Every import statement counts, function-level ones included. A function-level import of a
project module is allowed only where it guards an optional dependency (FUNCTION_LEVEL_ALLOWED).
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGES = ("data_pipelines", "configs", "stt")
TRAINER = (
    "stt.train",
    "stt.evaluation_modes",
    "stt.split_evaluator",
    "stt.main",
    "stt.config_validation",
    "stt.reproduce",
    "stt.reproduce_suites",
    "stt.reproduce_runs",
    "stt.reproduce_tables",
    "stt.reproduce_figures",
    "stt.reproduce_comparisons",
    "stt.reproduce_hard_tables",
)
MAY_IMPORT = {
    "data_pipelines": {"data_pipelines"},
    "configs": {"configs", "data_pipelines"},
    "core": {"data_pipelines", "core"},
    "explain": {"data_pipelines", "core", "explain"},
    "trainer": {"data_pipelines", "core", "explain", "trainer"},
}
# The one core module a config may import: the task names it offers (configs/ave.py's `task`
# argument) are the core's list, not a copy of it.
CONFIGS_MAY_READ = {"stt.tasks"}
# (importer, imported): apache-beam is the optional [beam] extra, imported when a build asks.
FUNCTION_LEVEL_ALLOWED = {
    ("data_pipelines.build", "data_pipelines.video_beam"),
    ("data_pipelines.video_examples", "data_pipelines.video_beam"),
}


def layer_of(module: str) -> str:
  """The layer of a dotted module name of the project."""
  top = module.split(".")[0]
  if top in ("data_pipelines", "configs"):
    return top
  if module in TRAINER or any(module.startswith(name + ".") for name in TRAINER):
    return "trainer"
  if module == "stt.explain" or module.startswith("stt.explain."):
    return "explain"
  return "core"


def module_names(root: pathlib.Path) -> dict[str, pathlib.Path]:
  """{dotted name: file} of every module of the project's packages under `root`."""
  names = {}
  for package in PACKAGES:
    for path in sorted((root / package).rglob("*.py")):
      parts = list(path.relative_to(root).with_suffix("").parts)
      if parts[-1] == "__init__":
        parts = parts[:-1]
      names[".".join(parts)] = path
  return names


def imports_of(path: pathlib.Path, known: set[str]) -> list[tuple[str, bool]]:
  """[(imported project module, inside a function)] of one file."""
  tree = ast.parse(path.read_text(), filename=str(path))
  found = []

  def visit(node, in_function: bool):
    for child in ast.iter_child_nodes(node):
      nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
      if isinstance(child, ast.Import):
        found.extend((alias.name, nested) for alias in child.names)
      elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
        for alias in child.names:
          candidate = f"{child.module}.{alias.name}"
          found.append((candidate if candidate in known else child.module, nested))
      visit(child, nested)

  visit(tree, False)
  return [
      (name, nested) for name, nested in found if name.split(".")[0] in PACKAGES and name in known
  ]


def import_graph(root: pathlib.Path) -> dict[str, list[tuple[str, bool]]]:
  names = module_names(root)
  return {name: imports_of(path, set(names)) for name, path in names.items()}


def layer_violations(graph) -> list[str]:
  return [
      f"{importer} ({layer_of(importer)}) imports {imported} ({layer_of(imported)})"
      for importer, imports in graph.items()
      for imported, _ in imports
      if layer_of(imported) not in MAY_IMPORT[layer_of(importer)]
      and not (layer_of(importer) == "configs" and imported in CONFIGS_MAY_READ)
  ]


def cycles(graph) -> list[list[str]]:
  """The import cycles (each as a list of modules), by depth-first search."""
  edges = {
      name: sorted({imported for imported, _ in imports if imported != name})
      for name, imports in graph.items()
  }
  state, stack, found = {}, [], []

  def visit(name):
    state[name] = "open"
    stack.append(name)
    for imported in edges.get(name, ()):
      if state.get(imported) == "open":
        found.append(stack[stack.index(imported) :] + [imported])
      elif imported not in state:
        visit(imported)
    stack.pop()
    state[name] = "done"

  for name in sorted(edges):
    if name not in state:
      visit(name)
  return found


def function_level_imports(graph) -> set[tuple[str, str]]:
  return {
      (importer, imported)
      for importer, imports in graph.items()
      for imported, nested in imports
      if nested
  }


def test_the_project_imports_follow_the_layers():
  assert layer_violations(import_graph(REPO)) == []


def test_the_project_has_no_import_cycle():
  assert cycles(import_graph(REPO)) == []


def test_no_function_level_import_but_optional_dependencies():
  assert function_level_imports(import_graph(REPO)) <= FUNCTION_LEVEL_ALLOWED


def _write(root: pathlib.Path, files: dict[str, str]):
  for name, text in files.items():
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def bad_tree(tmp_path):
  """A tree that breaks each rule once."""
  _write(
      tmp_path,
      {
          "data_pipelines/__init__.py": "",
          "data_pipelines/build.py": "def f():\n  from stt import datasets\n",
          "configs/__init__.py": "",
          "configs/common.py": "from stt.models import stan\n",
          "stt/__init__.py": "",
          "stt/datasets.py": "from stt import state\n",
          "stt/state.py": "import stt.datasets\n",
          "stt/train.py": "",
          "stt/models/__init__.py": "",
          "stt/models/stan.py": "",
          "stt/explain/__init__.py": "",
          "stt/explain/video.py": "from stt import train\n",
      },
  )
  return tmp_path


def test_the_checks_catch_each_kind_of_violation(bad_tree):
  graph = import_graph(bad_tree)
  assert sorted(layer_violations(graph)) == [
      "configs.common (configs) imports stt.models.stan (core)",
      "data_pipelines.build (data_pipelines) imports stt.datasets (core)",
      "stt.explain.video (explain) imports stt.train (trainer)",
  ]
  assert cycles(graph) == [["stt.datasets", "stt.state", "stt.datasets"]]
  assert function_level_imports(graph) == {("data_pipelines.build", "stt.datasets")}


def test_the_entry_point_loads_tensorflow_only_to_train():
  """clu's TensorBoard writer imports TensorFlow (about 5 s): only a training run needs it, so
  `python -m stt.main` answers a config error or runs --mode=explain without it."""
  check = "import sys, stt.main; print(sorted({'tensorflow', 'clu'} & sys.modules.keys()))"
  result = subprocess.run(
      [sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, timeout=300
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == "[]"
