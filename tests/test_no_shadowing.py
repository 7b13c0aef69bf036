"""No module of this repository can shadow an installed distribution.

A folder that lands on `sys.path` makes every module and package in it importable by its bare
name, ahead of site-packages. When `bench/` was run as scripts, `bench/kernels.py` was imported
in place of the `kernels` distribution that transformers probes, and every test after it that
compared with transformers failed. The package sources therefore live under `src/` (never on the
path) and the folders that are on it — the repository root (pytest's rootdir for the `tests`
package, `python -m bench.<name>`), `examples/` (`python examples/<name>.py`) — hold only names
no installed distribution uses.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ON_PATH = (REPO, REPO / "examples")


def importable_names(folder: Path) -> set[str]:
    """Top-level names a folder on sys.path makes importable: modules, packages and
    namespace portions (any directory whose name is an identifier)."""
    names = set()
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_file() and entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.is_dir() and entry.name.isidentifier():
            names.add(entry.name)
    return names


def installed_top_level() -> dict[str, list[str]]:
    """Top-level module -> distributions that install it (tines itself left out)."""
    found = importlib.metadata.packages_distributions()
    return {name: dists for name, dists in found.items() if dists != ["tines"]}


def folders_on_path() -> list[Path]:
    """The repository folders on this process's sys.path, plus the ones our commands add."""
    here = {Path(p).resolve() for p in sys.path if p}
    inside = [p for p in here if (p == REPO or REPO in p.parents)
              and not p.relative_to(REPO).parts[:1] in ((".venv",), (".venv-latest",))]
    return sorted(set(inside) | set(ON_PATH))


def clashes(folders: list[Path], installed: dict[str, list[str]]) -> list[str]:
    return [f"{folder}/{name} shadows {installed[name]}" for folder in folders
            for name in sorted(importable_names(folder)) if name in installed]


def test_no_repository_name_shadows_an_installed_distribution() -> None:
    assert clashes(folders_on_path(), installed_top_level()) == []


def test_only_the_root_and_examples_are_on_the_path() -> None:
    assert set(folders_on_path()) == set(ON_PATH)


def test_the_package_sources_are_not_importable_from_the_root() -> None:
    assert {"kernels", "grammar", "runtime", "lang"}.isdisjoint(importable_names(REPO))


def test_a_clash_is_reported(tmp_path) -> None:
    (tmp_path / "pytest.py").write_text("")  # pytest is installed wherever this runs
    (tmp_path / "not_a_distribution_name").mkdir()
    (tmp_path / "notes.txt").write_text("")
    assert importable_names(tmp_path) == {"pytest", "not_a_distribution_name"}
    assert clashes([tmp_path], installed_top_level()) == [f"{tmp_path}/pytest shadows ['pytest']"]
