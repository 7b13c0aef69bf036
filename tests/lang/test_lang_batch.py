from __future__ import annotations

import asyncio

import pytest

import tines

FEW_SHOT = "".join(f"Q: {a}+{a}?\nA: {2 * a}\n" for a in range(1, 30))  # ~300 characters


@tines.program
def few_shot(s, question):
    s += FEW_SHOT
    s += "Q: " + question + "\nA: " + tines.gen("answer", stop="\n")


def _double(text, params):
    question = text.rsplit("Q: ", 1)[1]
    return str(2 * int(question.split("+")[0]))


def test_run_batch_returns_one_state_per_item_in_order():
    states = few_shot.run_batch([{"question": f"{i}+{i}?"} for i in range(8)],
                                backend=tines.MockBackend(_double), progress_bar=False)
    assert [s["answer"] for s in states] == [str(2 * i) for i in range(8)]


def test_run_batch_prefills_the_shared_prefix_once_before_the_items():
    mock = tines.MockBackend(_double)
    few_shot.run_batch([{"question": f"{i}+{i}?"} for i in range(32)], backend=mock,
                       progress_bar=False)
    warms = mock.requests_of("warm")
    assert [w.text for w in warms] == [FEW_SHOT + "Q: "]
    assert mock.requests[0].kind == "warm"
    gens = mock.requests_of("generate")
    assert len(gens) == 32 and all(g.text.startswith(FEW_SHOT) for g in gens)


def test_run_batch_items_run_concurrently():
    mock = tines.MockBackend(_double, latency=0.2)
    few_shot.run_batch([{"question": f"{i}+{i}?"} for i in range(6)], backend=mock,
                       num_threads=6, progress_bar=False)
    assert mock.max_in_flight == 6


def test_an_item_error_stays_on_that_item():
    def reply(text, params):
        if text.endswith("Q: 3+3?\nA: "):
            raise ConnectionError("lost item 3")
        return _double(text, params)

    states = few_shot.run_batch([{"question": f"{i}+{i}?"} for i in range(5)],
                                backend=tines.MockBackend(reply), progress_bar=False)
    assert [s.error() is None for s in states] == [True, True, True, False, True]
    assert "lost item 3" in str(states[3].error())
    assert states[4]["answer"] == "8"


def test_an_item_with_bad_arguments_stays_on_that_item():
    states = few_shot.run_batch([{"question": "1+1?"}, {"query": "x"}],
                                backend=tines.MockBackend(_double), progress_bar=False)
    assert states[0]["answer"] == "2"
    assert isinstance(states[1].error(), TypeError)


def test_run_batch_takes_positional_items():
    states = few_shot.run_batch([["4+4?"], ("5+5?",)], backend=tines.MockBackend(_double),
                                progress_bar=False)
    assert [s["answer"] for s in states] == ["8", "10"]


def test_run_batch_passes_sampling_defaults():
    mock = tines.MockBackend(_double)
    few_shot.run_batch([{"question": "1+1?"}], backend=mock, temperature=0, max_tokens=4,
                       progress_bar=False)
    params = mock.requests_of("generate")[0].params
    assert (params.temperature, params.max_new_tokens) == (0, 4)


def test_run_batch_without_static_prefix_does_not_warm():
    @tines.program
    def dynamic(s, question):
        s += question + tines.gen("a")

    mock = tines.MockBackend(["x", "y"])
    dynamic.run_batch([{"question": "a"}, {"question": "b"}], backend=mock, progress_bar=False)
    assert mock.requests_of("warm") == []


def test_run_batch_shows_a_progress_bar(capsys):
    few_shot.run_batch([{"question": "1+1?"}], backend=tines.MockBackend(_double))
    assert "1/1" in capsys.readouterr().err


def test_run_batch_rejects_a_bad_thread_count():
    with pytest.raises(ValueError, match="num_threads"):
        few_shot.run_batch([{"question": "1+1?"}], backend=tines.MockBackend(),
                           num_threads=0, progress_bar=False)


def test_arun_batch_runs_items_concurrently_and_warms_once():
    mock = tines.MockBackend(_double, latency=0.03)
    states = asyncio.run(few_shot.arun_batch([{"question": f"{i}+{i}?"} for i in range(8)],
                                             backend=mock, progress_bar=False))
    assert [s["answer"] for s in states] == [str(2 * i) for i in range(8)]
    assert mock.max_in_flight == 8
    assert [r.kind for r in mock.requests].count("warm") == 1


def test_arun_batch_keeps_item_errors_on_items():
    def reply(text, params):
        if "Q: 1+1?" in text[-12:]:
            raise ConnectionError("item 1")
        return _double(text, params)

    states = asyncio.run(few_shot.arun_batch([{"question": f"{i}+{i}?"} for i in range(3)],
                                             backend=tines.MockBackend(reply),
                                             progress_bar=False, max_concurrency=2))
    assert [s.error() is None for s in states] == [True, False, True]
