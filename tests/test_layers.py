"""The one-way dependency rule of DESIGN.md's layer table, checked by parsing imports."""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
OURS = ("safework", "data", "models", "rl", "verifiers", "launch", "configs", "tests", "benchmarks")

# package -> the packages of ours it may import (besides itself).
ALLOWED = {
    "safework.infra": set(),
    "data": {"safework.infra"},
    "models": {"safework.infra"},
    "rl": {"safework.infra", "data", "models"},
    "verifiers": {"safework.infra", "data", "models", "rl"},
    "safework": {"safework.infra", "data", "models", "rl", "verifiers"},
    "launch": {"safework.infra", "data", "models", "rl", "verifiers", "safework", "configs"},
    "configs": set(),
}


def _package_of(module: str) -> str | None:
  """The layer-table package a dotted module name belongs to."""
  if module == "safework.infra" or module.startswith("safework.infra."):
    return "safework.infra"
  top = module.split(".")[0]
  return top if top in OURS else None


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
  tree = ast.parse(path.read_text(), filename=str(path))
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(node.lineno, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      if node.module == "safework":
        # `from safework import infra` names the infra package, `... import ladder` layer 4.
        found += [(node.lineno, f"safework.{a.name}") for a in node.names]
      else:
        found.append((node.lineno, node.module))
  return found


def _violations(package: str) -> list[str]:
  directory = ROOT.joinpath(*package.split("."))
  bad = []
  for path in sorted(directory.rglob("*.py")):
    if package == "safework" and "infra" in path.relative_to(directory).parts:
      continue
    for lineno, module in _imports(path):
      target = _package_of(module)
      if target is None or target == package:
        continue
      if target not in ALLOWED[package]:
        bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {module} ({package} may import "
                   f"{sorted(ALLOWED[package]) or 'nothing of ours'})")
  return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_only_down_the_layer_table(package):
  assert not _violations(package), "\n".join(_violations(package))


def test_checker_catches_an_upward_import(tmp_path, monkeypatch):
  fake_root = tmp_path
  (fake_root / "models").mkdir()
  (fake_root / "models" / "bad.py").write_text("from rl import losses\nimport numpy\n")
  monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
  assert _violations("models") == [
      "models/bad.py:1 imports rl ("
      "models may import ['safework.infra'])"]


def test_every_package_states_its_job():
  for package in ALLOWED:
    init = ROOT.joinpath(*package.split("."), "__init__.py")
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and len(doc.split()) >= 8, f"{init} needs a docstring that states its job"


def test_checker_allows_launch_to_import_the_product_and_not_data(tmp_path, monkeypatch):
  (tmp_path / "launch").mkdir()
  (tmp_path / "launch" / "main.py").write_text("from safework import ladder\n")
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "x.py").write_text("from safework import infra\nfrom safework import ladder\n")
  monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
  assert _violations("launch") == []
  assert _violations("data") == [
      "data/x.py:2 imports safework.ladder (data may import ['safework.infra'])"]
