"""The bench workloads (bench/workloads/): inputs are deterministic, `check` rejects what it
should, and each tines program gives valid answers that are identical with the radix cache
on and off (greedy). Peers are not run here; bench/run.py runs them."""

from __future__ import annotations

import pytest

from bench.workloads import WORKLOADS
from bench.workloads.common import pick
from bench.workloads.react_agent import observe

NAMES = list(WORKLOADS)


@pytest.fixture(scope="module")
def tiny_backends(tiny_model_dir):
    """(radix on, radix off) LocalBackends over two engines on the tiny random model."""
    from tines.local import LocalBackend
    from tines.runtime.engine.engine import Engine

    on = Engine(str(tiny_model_dir), kv_tokens=8192, weights="fp32")
    off = Engine(str(tiny_model_dir), kv_tokens=8192, disable_radix_cache=True, weights="fp32")
    yield LocalBackend(on), LocalBackend(off)
    on.shutdown()
    off.shutdown()


@pytest.mark.parametrize("name", NAMES)
def test_inputs_are_deterministic_and_prefix_stable(name):
    wl = WORKLOADS[name]
    assert wl.make_inputs(3, 0) == wl.make_inputs(3, 0)
    assert wl.make_inputs(3, 0)[:2] == wl.make_inputs(2, 0)  # a capped system runs a prefix
    assert wl.make_inputs(2, 1) != wl.make_inputs(2, 0)


@pytest.mark.parametrize("name", NAMES)
def test_check_rejects_a_failed_program(name):
    assert WORKLOADS[name].check(None) is False


def test_checks_on_hand_made_answers():
    assert WORKLOADS["mmlu"].check("B") and not WORKLOADS["mmlu"].check("E")
    assert WORKLOADS["hellaswag"].check(3) and not WORKLOADS["hellaswag"].check(4)
    json_wl = WORKLOADS["json_extraction"]
    record = {"name": "Ana Silva", "age": 31, "role": "analyst", "department": "sales",
              "office": {"city": "Porto", "country": "Portugal"}, "status": "active",
              "skills": ["python"]}
    assert json_wl.check(record)
    assert not json_wl.check({**record, "role": "astronaut"})
    assert not json_wl.check({**record, "office": {"city": "Porto"}})
    tot = WORKLOADS["tree_of_thought"]
    full = {"thoughts": ["a"] * 3, "checks": [["b"] * 3] * 3, "answers": [["c"] * 3] * 3}
    assert tot.check(full)
    assert not tot.check({**full, "answers": [["c"] * 3] * 2})  # a fork did not complete
    step = {"thought": "t", "action": {"tool": "search", "input": "x"}}
    assert WORKLOADS["react_agent"].check([step] * 3)
    assert not WORKLOADS["react_agent"].check([step, step, {**step, "action": {"tool": "fly"}}])


def test_pick_follows_select_default_rule():
    assert pick([[-1.0, -3.0], [-1.5], [-2.0]]) == 1  # mean logprob, not the sum
    assert pick([[-1.0], [-1.0]]) == 0  # ties go to the earliest choice


def test_tools_are_deterministic():
    assert observe({"tool": "calculate", "input": "12 * 7"}) == "84"
    assert observe({"tool": "search", "input": "harbor"}) == observe({"tool": "search",
                                                                      "input": "Harbor"})
    assert observe(None).startswith("error")


@pytest.mark.parametrize("name", NAMES)
def test_tines_program_valid_and_radix_invariant_tiny(name, tiny_backends):
    wl = WORKLOADS[name]
    inputs = wl.make_inputs(2, 0)
    on, off = (wl.run_tines(b, inputs) for b in tiny_backends)
    assert all(wl.check(a) for a in on), on
    assert on == off


@pytest.fixture(scope="module")
def default_off_backend(default_model_path):
    """A LocalBackend over a radix-off engine on the default model."""
    from tines.local import LocalBackend
    from tines.runtime.engine.engine import Engine

    with Engine(str(default_model_path), kv_tokens=4096, disable_radix_cache=True,
                weights="fp32") as off:
        yield LocalBackend(off)


@pytest.mark.model
@pytest.mark.parametrize("name", ["hellaswag", "json_extraction"])
def test_tines_program_valid_and_radix_invariant_default_model(name, default_engine,
                                                               default_off_backend):
    from tines.local import LocalBackend

    wl = WORKLOADS[name]
    inputs = wl.make_inputs(2, 0)
    answers_on = wl.run_tines(LocalBackend(default_engine), inputs)
    assert all(wl.check(a) for a in answers_on), answers_on
    assert answers_on == wl.run_tines(default_off_backend, inputs)
