"""Every `examples/*.py` runs on the default model (`python examples/NAME.py`) and prints what
it promises. The examples start together, two at a time with one torch thread each (the
machine has two cores), so the suite pays for a model load about once per pair.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 240  # seconds per example, model load included

# What each example's output must contain (regular expressions, searched in stdout).
EXPECTED = {
    "quickstart": [r"answer: .*Paris", r"verdict: (yes|no)\n",
                   r"\d+ of \d+ prompt tokens came from the cache"],
    "json_extraction": [r"-> Person\(name='Alice', age=30, city='Paris'\)",
                        r"-> Person\(name='Bob', age=41, city='Rome'\)",
                        r"-> Person\(name='Carla', age=27, city='Madrid'\)"],
    "few_shot_select": [r"accuracy: 6/6"],
    "tree_of_thought": [r"(?s)(\[(good|bad) *\] .+?){6}", r"(?s)(=> expanding: .+?){2}",
                        r"plan:\n- Keep a regular schedule\.\n- .+\n- .+\n$"],
    "react_agent": [r"Action: calculator\nInput: \{\"expression\":\"37 \* 23\"\}\n"
                    r"Observation: 851\nAction: finish", r"=> answer: 851\n",
                    r"=> answer: 901\n"],
    "remote_client": [r"native:  number=15 parity=(even|odd) \(cached prompt tokens: \d+\)",
                      r"openai:  date=20\d\d-[01]\d-[0-3]\d\n"],
}


def test_every_example_is_checked():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


def _run(name: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    try:
        return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, -1, e.stdout or "",
                                           f"timed out after {TIMEOUT} s\n{e.stderr or ''}")


@pytest.fixture(scope="module")
def runs(default_model_path) -> dict[str, subprocess.CompletedProcess]:
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(EXPECTED, pool.map(_run, EXPECTED)))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_its_result(runs, name):
    run = runs[name]
    assert run.returncode == 0, f"{name}.py failed:\n{run.stderr[-3000:]}"
    for pattern in EXPECTED[name]:
        assert re.search(pattern, run.stdout), f"{name}.py: no {pattern!r} in:\n{run.stdout}"
