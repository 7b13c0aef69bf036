"""Print how the installed packages differ from the locks: `python requirements/drift.py LOCK...`.

`make test-latest` runs it before the suite, so a failure there comes with the versions that
moved since the lock (the names to look at first)."""

from __future__ import annotations

import importlib.metadata as metadata
import re
import sys


def locked_versions(path: str) -> dict[str, str]:
    pins = {}
    for line in open(path):
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[canonical(match[1])] = match[2]
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    locked = {name: v for path in sys.argv[1:] for name, v in locked_versions(path).items()}
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    moved = [(n, v, installed[n]) for n, v in sorted(locked.items())
             if n in installed and installed[n].split("+")[0] != v.split("+")[0]]
    new = sorted(set(installed) - set(locked) - {"tines", "pip"})
    print(f"drift from {' '.join(sys.argv[1:])}: {len(moved)} moved, {len(new)} not in the locks")
    for name, old, now in moved:
        print(f"  {name:32s} {old:>14s} -> {now}")
    for name in new:
        print(f"  {name:32s} {'(new)':>14s} -> {installed[name]}")


if __name__ == "__main__":
    main()
