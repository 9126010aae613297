"""The engine's layers import one way: core -> sources -> analysis -> privacy -> synthesis -> evaluation -> pipeline.

Every engine module's imports (module level and inside functions, absolute and relative) are parsed with ast; an
import of a later layer, of the Dagster layer or of dagster itself fails the test and is named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import genesis_pipelines.engine

LAYERS = ("core", "sources", "analysis", "privacy", "synthesis", "evaluation", "pipeline")
# the parts of the project above the engine, which the engine never imports
OUTSIDE = ("api", "cli", "cli_files", "components", "defs", "definitions")


def _module_name(root: Path, package: str, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _layer(package: str, module: str) -> str | None:
    """The layer of an engine module: its first folder, `pipeline` for engine/pipeline.py; None for the package."""
    rest = module[len(package) + 1:].split(".") if module.startswith(package + ".") else []
    if not rest:
        return None
    return rest[0] if rest[0] in LAYERS else None


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Dotted modules (or module.name candidates) an import statement reaches."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        # `from pkg import mod` reaches pkg.mod; `from mod import name` reaches mod (name is no layer)
        return [f"{target}.{alias.name}" for alias in node.names] or [target]
    return []


def layer_violations(root: Path, package: str) -> list[str]:
    """One line per import in the package tree at `root` that goes against the layer order or leaves the engine
    for the Dagster layer, naming the importing file, its line and the imported module."""
    top = package.rsplit(".", 1)[0]
    out = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(root, package, path)
        own = _layer(package, module)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target in _imported(node, module, path.name == "__init__.py"):
                where = f"{path.relative_to(root).as_posix()}:{node.lineno} imports {target}"
                if target == "dagster" or target.startswith("dagster.") or target.startswith("dagster_"):
                    out.append(f"{where} (the engine never imports dagster)")
                elif any(target == f"{top}.{o}" or target.startswith(f"{top}.{o}.") for o in OUTSIDE):
                    out.append(f"{where} (the engine never imports the layers above it)")
                elif own is not None and target.startswith(package + "."):
                    theirs = _layer(package, target)
                    if theirs is not None and LAYERS.index(theirs) > LAYERS.index(own):
                        out.append(f"{where} (layer {own} may not import the later layer {theirs})")
    return out


def private_imports(root: Path, package: str) -> list[str]:
    """Imports of a private name (`_x`) from a module outside the importer's own package: a helper two rooms share
    is public, in the lower room."""
    out = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(root, package, path)
        own_package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _imported(node, module, path.name == "__init__.py")[0].rsplit(".", 1)[0]
            if not source.startswith(package + "."):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") \
                        and source.rsplit(".", 1)[0] != own_package:
                    out.append(f"{path.relative_to(root).as_posix()}:{node.lineno} imports {source}.{alias.name}")
    return out


def import_cycles(root: Path, package: str) -> list[str]:
    """Cycles among the engine's modules, counting every import (inside functions and TYPE_CHECKING blocks too:
    an import deferred to dodge a cycle is still one): each as `a -> b -> a`."""
    import graphlib

    modules = {_module_name(root, package, path): path for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        deps = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _imported(node, module, path.name == "__init__.py"):
                target = target if target in modules else target.rsplit(".", 1)[0]
                if target in modules and target != module:
                    deps.add(target)
    out = []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
            return out
        except graphlib.CycleError as exc:
            cycle = list(reversed(exc.args[1][1:]))  # importer first; the sorter repeats the first node at the end
            start = cycle.index(min(cycle))
            cycle = cycle[start:] + cycle[:start]
            out.append(" -> ".join([*cycle, cycle[0]]))
            graph[cycle[0]].discard(cycle[1])


def test_engine_imports_go_one_way():
    root = Path(genesis_pipelines.engine.__file__).parent
    assert sorted(p.name for p in root.iterdir() if p.suffix == ".py") == ["__init__.py", "pipeline.py"], \
        "every engine module sits in a layer folder"
    assert layer_violations(root, "genesis_pipelines.engine") == []


def test_engine_modules_import_each_other_without_cycles():
    assert import_cycles(Path(genesis_pipelines.engine.__file__).parent, "genesis_pipelines.engine") == []


def test_engine_modules_share_only_public_names_across_packages():
    assert private_imports(Path(genesis_pipelines.engine.__file__).parent, "genesis_pipelines.engine") == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg" / "engine"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_names_a_later_layer_import_even_inside_a_function(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "", "pipeline.py": "from pkg.engine.evaluation import report\n",
        "core/__init__.py": "", "core/spec.py": "def f():\n    from pkg.engine.synthesis.model import fit\n",
        "synthesis/__init__.py": "", "synthesis/model.py": "from ..core import spec\nfrom . import other\n",
        "evaluation/__init__.py": "", "evaluation/report.py": "from pkg.engine.synthesis import model\n",
    })
    assert layer_violations(root, "pkg.engine") == [
        "core/spec.py:2 imports pkg.engine.synthesis.model.fit (layer core may not import the later layer synthesis)"]


def test_checker_names_relative_and_dagster_imports(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "", "sources/__init__.py": "", "sources/io.py": "import dagster as dg\n",
        "analysis/__init__.py": "", "analysis/keys.py": "from .. import privacy\nfrom ..privacy.pii import scan\n",
        "privacy/__init__.py": "", "privacy/pii.py": "from pkg.defs import assets\n",
    })
    assert layer_violations(root, "pkg.engine") == [
        "analysis/keys.py:1 imports pkg.engine.privacy (layer analysis may not import the later layer privacy)",
        "analysis/keys.py:2 imports pkg.engine.privacy.pii.scan (layer analysis may not import the later layer privacy)",
        "privacy/pii.py:1 imports pkg.defs.assets (the engine never imports the layers above it)",
        "sources/io.py:1 imports dagster (the engine never imports dagster)",
    ]


def test_private_import_checker_allows_the_own_package_only(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "", "core/__init__.py": "", "core/values.py": "_SCALE = 2\n",
        "core/spec.py": "from pkg.engine.core.values import _SCALE\n",
        "evaluation/__init__.py": "", "evaluation/report.py": "from ..core.values import _SCALE\n",
    })
    assert private_imports(root, "pkg.engine") == ["evaluation/report.py:1 imports pkg.engine.core.values._SCALE"]



def test_cycle_checker_names_a_cycle(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "", "core/__init__.py": "", "core/a.py": "from pkg.engine.core import b\n",
        "core/b.py": "from pkg.engine.core.a import f\ndef g():\n    from pkg.engine.core import c\n",
        "core/c.py": "from pkg.engine.core.b import g\n",
    })
    assert sorted(import_cycles(root, "pkg.engine")) == ["pkg.engine.core.a -> pkg.engine.core.b -> pkg.engine.core.a",
                                                         "pkg.engine.core.b -> pkg.engine.core.c -> pkg.engine.core.b"]


def test_the_code_passes_ruff():
    """`ruff check .` (the rules in pyproject's [tool.ruff]) stays clean, so lint errors fail the suite, not a review."""
    import importlib.util
    import subprocess
    import sys

    import pytest

    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (it is in the dev extra: pip install -e '.[dev]')")
    root = Path(genesis_pipelines.engine.__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
