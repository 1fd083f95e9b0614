"""The package's layout holds: its folders (and root modules) form one downward order, each importing only those
below it (type-only imports count); no module import cycles (imports inside functions count, type-only ones do
not); every module imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "autocompress"
# Bottom to top (docs/architecture.md): each layer imports only the layers before it. The first is the package's root
# modules the whole house stands on; `autocompress` itself (its lazy `search`) and `__main__` stand above all.
CORE = ("errors", "inputs", "task", "target", "cache", "data", "measure_lock", "manifest", "plugins")
LAYERS = ("core", "model", "export", "runtime", "evaluate", "teacher", "passes", "space", "engine", "report", "api")
LAYERS += ("demo", "cli")


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path], type_only: bool = False) -> set[str]:
    """The package modules this one imports, anywhere in it (under `if TYPE_CHECKING:` too with type_only)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and not type_only:
            node.body = []
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]

    def resolve(target: str) -> str:
        while target not in modules and "." in target:
            target = target.rsplit(".", 1)[0]
        return target

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {resolve(a.name) for a in node.names if a.name.startswith("autocompress")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.startswith("autocompress"):
                found |= {
                    resolve(f"{base}.{a.name}") if f"{base}.{a.name}" in modules else resolve(base) for a in node.names
                }
    return found - {name}


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return len(LAYERS)
    return 0 if parts[1] in CORE else LAYERS.index(parts[1])


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """Every import of a module from a higher layer, as 'importer → imported'; a module in no layer is an error."""
    modules = _modules(package)
    unplaced = {m.split(".")[1] for m in modules if "." in m} - set(CORE) - set(LAYERS) - {"__main__"}
    assert not unplaced, f"{sorted(unplaced)}: in no layer of tests/test_layout.py (place it, docs/architecture.md)"
    return [
        f"{name} → {imported}"
        for name, path in sorted(modules.items())
        for imported in sorted(_imports(name, path, modules, type_only=True))
        if _layer(imported) > _layer(name)
    ]


def test_folders_import_only_downwards() -> None:
    upward = upward_imports()
    assert not upward, "imports from a higher layer (see LAYERS): " + "; ".join(upward)


def test_the_layers_check_sees_a_planted_upward_import(tmp_path: Path) -> None:
    """A copy of the package where the model layer imports the engine (type-only, as such imports often start) fails
    the check, naming the import."""
    import shutil

    copy = shutil.copytree(PACKAGE, tmp_path / "autocompress", ignore=shutil.ignore_patterns("demo", "__pycache__"))
    (copy / "demo").mkdir()
    (copy / "demo" / "__init__.py").write_text("")
    arch = copy / "model" / "arch.py"
    planted = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from autocompress.engine.driver import Driver\n"
    arch.write_text(arch.read_text() + planted)
    assert upward_imports(copy) == ["autocompress.model.arch → autocompress.engine.driver"]


def test_every_module_imports() -> None:
    """In one fresh interpreter, every module of the package, in reverse order (the static check above covers the
    order; this one catches a module no test imports)."""
    names = sorted((n for n in _modules() if not n.endswith("__main__")), reverse=True)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)"
    done = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
