"""The engine thread is the only owner of engine state (issue 14): callers on many threads
submit, abort and read stats without touching it; admission is counted where it is enforced;
per-request statistics stay bounded however many requests pass."""

from __future__ import annotations

import random
import threading

import pytest

from tines.runtime.engine.engine import Engine, QueueFullError
from tines.runtime.sampling_params import SamplingParams


@pytest.fixture()
def engine(tiny_model_dir):
    with Engine(str(tiny_model_dir), kv_tokens=4096, max_running=16, weights="fp32") as e:
        yield e


def test_stats_submit_and_abort_from_eight_threads(engine):
    results, errors = [], []
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for i in range(12):
                params = SamplingParams(temperature=0, max_new_tokens=rng.randint(1, 24), ignore_eos=True)
                handle = engine.submit(f"client {seed} asks question {i}", params)
                engine.stats()
                if rng.random() < 0.4:
                    engine.abort(handle.request_id)
                out = handle.result()
                with lock:
                    results.append(out)
                engine.stats()
        except Exception as e:  # noqa: BLE001 - any exception fails the test below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    aborted = sum(o.outputs[0].finish_reason == "abort" for o in results)
    stats = engine.stats()
    assert stats["num_requests"] == len(results) == 8 * 12
    assert stats["num_finished"] == len(results)
    assert stats["num_aborted"] == aborted
    assert stats["running"] == stats["waiting"] == 0
    assert stats["kv_slots_used"] == stats["kv_slots_cached"]  # no slot leaked
    engine.call(lambda core: core.scheduler.check_idle())


def test_a_burst_past_max_queue_is_refused_beyond_the_limit(tiny_model_dir):
    with Engine(str(tiny_model_dir), kv_tokens=4096, max_queue=8, weights="fp32") as engine:
        gate = threading.Event()
        blocker = threading.Thread(target=engine.call, args=(lambda core: gate.wait(),))
        blocker.start()  # the engine thread waits: nothing leaves the queue during the burst
        params = SamplingParams(temperature=0, max_new_tokens=2)
        accepted, refused = [], 0
        for i in range(200):
            try:
                accepted.append(engine.submit(f"burst {i}", params))
            except QueueFullError:
                refused += 1
        gate.set()
        blocker.join()
        assert (len(accepted), refused) == (8, 192)
        assert all(h.result().outputs[0].finish_reason == "length" for h in accepted)
        engine.submit("after the burst", params).result()  # the count went back down


def test_five_thousand_requests_leave_latency_buffers_bounded(engine):
    size = lambda: engine.call(lambda core: len(core.counters.ttft.counts))
    before, buckets_before = size(), len(engine.stats()["ttft_buckets"])
    params = SamplingParams(temperature=0, max_new_tokens=1, ignore_eos=True)
    for batch in range(50):
        engine.generate([[1 + (batch * 100 + i) % 500, 7, 9] for i in range(100)], params)
    stats = engine.stats()
    assert stats["ttft_count"] == 5000
    assert (size(), len(stats["ttft_buckets"])) == (before, buckets_before)


def test_grammars_and_token_healing_share_one_vocabulary(engine, monkeypatch):
    """Both index the vocabulary (~64 MiB on the default model's): one copy per engine."""
    from tines.runtime.engine import token_vocab

    made = []
    build = token_vocab.token_vocabulary
    monkeypatch.setattr(token_vocab, "token_vocabulary", lambda *a: made.append(build(*a)) or made[-1])
    params = SamplingParams(temperature=0, max_new_tokens=4, regex="[a-z]+", token_healing=True)
    engine.generate("The word is ", params)  # a grammar and a healed prompt
    assert len(made) == 1 and engine._intake._grammars.vocab is made[0]
