"""The import arrows of DESIGN.md, checked on the source with `ast`.

    lang -> runtime -> {grammar, kernels};  grammar -/-> runtime, lang;
    kernels -> torch, triton, numpy, stdlib only.

lang (the import package `tines`) may import at module level only the torch-free parts of
the runtime (`tines.runtime`, its `sampling_params` and `outputs`), and no torch at all;
imports inside functions are allowed only in the in-process backend (`lang/local.py`), for
its lazy engine load. Imports under `if TYPE_CHECKING:` never run and count as lazy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src"
FOLDERS = {"lang": "tines", "runtime": "tines.runtime", "grammar": "tines.grammar",
           "kernels": "tines.kernels"}
SUBPACKAGES = ("runtime", "grammar", "kernels")
LANG_RUNTIME_OK = {"tines.runtime", "tines.runtime.sampling_params", "tines.runtime.outputs"}
LANG_LAZY_FILES = {"local.py"}
KERNEL_THIRD_PARTY = {"torch", "triton", "numpy"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:-1]]
    if rel.stem != "__init__":
        parts.append(rel.stem)
    return ".".join(parts)


def layer(module: str) -> str:
    """Which part a module belongs to: lang / runtime / grammar / kernels / external."""
    parts = module.split(".")
    if parts[0] != "tines":
        return "external"
    if len(parts) > 1 and parts[1] in SUBPACKAGES:
        return parts[1]
    return "lang"


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, is at module level) for every import in the file; relative imports
    resolved, and `from pkg import sub` counted as importing `pkg.sub`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    this = module_name(path)
    package = this if path.stem == "__init__" else this.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, False)
            elif isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                subs = [a.name for a in child.names if base == "tines" and a.name in SUBPACKAGES]
                # `from tines import kernels` imports the subpackage; the parent package
                # runs first for every `tines.*` import anyway, so it is no arrow.
                if len(subs) < len(child.names):
                    found.append((base, top))
                found.extend((f"{base}.{name}", top) for name in subs)
            else:
                visit(child, top)

    visit(tree, True)
    return found


def violations() -> list[str]:
    out = []
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = path.relative_to(ROOT)
            for module, top in imports(path):
                target, root_module = layer(module), module.split(".")[0]
                bad = None
                if folder == "lang":
                    if target in ("grammar", "kernels"):
                        bad = "lang reaches grammar/kernels only through the runtime"
                    elif top and target == "runtime" and module not in LANG_RUNTIME_OK:
                        bad = "lang imports only sampling_params/outputs of the runtime " \
                              "at module level"
                    elif root_module in ("torch", "triton") and top:
                        bad = "lang imports no torch at module level"
                    elif not top and path.name not in LANG_LAZY_FILES and (
                            root_module in ("torch", "triton")
                            or (target == "runtime" and module not in LANG_RUNTIME_OK)):
                        bad = "lazy engine imports belong in the in-process backend only"
                elif folder == "runtime" and target == "lang":
                    bad = "runtime must not import lang"
                elif folder == "grammar" and target in ("lang", "runtime", "kernels"):
                    bad = "grammar imports neither runtime nor lang (it sees a vocabulary)"
                elif folder == "grammar" and root_module in ("torch", "triton"):
                    bad = "grammar stays torch-free (numpy masks; the engine applies them)"
                elif folder == "kernels" and target != "kernels" and not (
                        root_module in stdlib or root_module in KERNEL_THIRD_PARTY):
                    bad = "kernels import only torch/triton/numpy/stdlib"
                if bad:
                    out.append(f"{where}: import {module} ({bad})")
    return out


def test_no_forbidden_arrows() -> None:
    assert violations() == []


@pytest.mark.parametrize("source, module, expected", [
    ("from ... import kernels\n", "runtime/models/llama.py", "tines.kernels"),
    ("from ..config import X\n", "runtime/models/rope.py", "tines.runtime.config"),
    ("from .config import X\n", "runtime/models/rope.py", "tines.runtime.models.config"),
    ("from . import ir\n", "lang/state.py", "tines"),
    ("from tines import gen\n", "runtime/engine.py", "tines"),
])
def test_relative_imports_resolve(tmp_path, monkeypatch, source, module, expected) -> None:
    path = ROOT / module
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert expected in [m for m, _ in imports(path)]


def test_a_wrong_arrow_is_caught(monkeypatch) -> None:
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "from tines import gen\n")
    found = violations()
    assert any(v.startswith("runtime/") and "runtime must not import lang" in v for v in found)
    assert any(v.startswith("grammar/") for v in found)


def test_torch_and_engine_imports_in_lang_are_caught(monkeypatch) -> None:
    source = ("import torch\nfrom tines.runtime.engine import Engine\n"
              "def lazy():\n    import torch\n")
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    found = [v for v in violations() if v.startswith("lang/state.py")]
    assert any("no torch at module level" in v for v in found)
    assert any("only sampling_params/outputs" in v for v in found)
    assert any("in-process backend only" in v for v in found)
    assert not [v for v in violations() if v.startswith("kernels/") and "import torch " in v]


def test_layer_of_modules() -> None:
    assert [layer(m) for m in ("tines", "tines.gen", "tines.runtime.engine", "tines.grammar",
                               "tines.kernels.norm", "torch")] == \
        ["lang", "lang", "runtime", "grammar", "kernels", "external"]


def test_importing_tines_loads_no_torch() -> None:
    code = "import sys, tines; assert 'torch' not in sys.modules, 'torch'; " \
           "assert 'pydantic' not in sys.modules, 'pydantic'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)
