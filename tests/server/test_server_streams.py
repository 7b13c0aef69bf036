"""Issue 19, streams and admission through the live server: a failed stream ends with an error
event (never a silent cut), a bad request sent while a stream runs leaves that stream exactly
as it is alone, and a burst past --max-queue is refused with 503s while every accepted
request completes."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.server.engine_pause import paused, wait_until
from tests.server.live_server import start_server
from tines.runtime.engine.engine import Engine

GREEDY = {"max_new_tokens": 48, "temperature": 0, "ignore_eos": True}


def events_of(lines) -> list:
    return [line[6:] if line[6:] == "[DONE]" else json.loads(line[6:])
            for line in lines if line.startswith("data: ")]


def fail_request(engine: Engine, request_id: str) -> bool:
    """Fail one running request from the engine thread, as the engine does when a request's
    own sampling or detokenizing raises: its sink gets the exception. Returns whether found."""

    def fail(core) -> bool:
        for seq in [*core.scheduler.running, *core.scheduler.waiting]:
            if seq.request.request_id == request_id:
                seq.request.sink(RuntimeError("the request failed in the engine"))
                return True
        return False

    found = engine.call(fail)
    engine.abort(request_id)
    return found


STREAMS = [
    ("/generate", lambda model: {"text": "x", "stream": True, "sampling_params":
                                 {"max_new_tokens": 1500, "ignore_eos": True}}),
    ("/v1/completions", lambda model: {"model": model, "prompt": "x", "stream": True,
                                       "max_tokens": 1500, "ignore_eos": True}),
    ("/v1/chat/completions", lambda model: {"model": model, "stream": True, "max_tokens": 1500,
                                            "ignore_eos": True,
                                            "messages": [{"role": "user", "content": "x"}]}),
]


@pytest.mark.parametrize(("path", "body"), STREAMS, ids=[p for p, _ in STREAMS])
def test_failed_stream_ends_with_an_error_event_then_done(tiny_server, path, body):
    with tiny_server.client() as c:
        model = c.get("/v1/models").json()["data"][0]["id"]
        with c.stream("POST", path, json=body(model)) as s:
            assert s.status_code == 200
            engine_id = s.headers["x-request-id"]
            assert fail_request(tiny_server.engine, engine_id)
            events = events_of(s.iter_lines())
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["type"] == "server_error" and "failed in the engine" in error["message"]
    tiny_server.wait_idle()


def _stream_text(client, body: dict) -> tuple[str, str]:
    """(text, finish reason) of one streamed /generate."""
    with client.stream("POST", "/generate", json=body) as s:
        events = events_of(s.iter_lines())
    last = events[-2]
    if "error" in last:
        return "error", last["error"]["message"]
    return last["text"], last["meta_info"]["finish_reason"]["type"]


BAD_DURING_STREAM = [
    {"text": "y", "sampling_params": {"top_k": 2**63, "max_new_tokens": 4}},
    {"text": "y", "sampling_params": {"stop_token_ids": [10**12], "min_new_tokens": 2,
                                      "max_new_tokens": 4}},
    {"text": "y", "sampling_params": {"temperature": 1e-300, "max_new_tokens": 4}},
]


def test_bad_requests_during_a_stream_leave_it_as_alone(tiny_server):
    good = {"text": "The cat sat", "stream": True, "sampling_params": GREEDY}
    groups = tiny_server.server.config.app.state.tines.dispatcher.groups
    with tiny_server.client() as c:
        alone = _stream_text(c, good)
        with ThreadPoolExecutor(1 + len(BAD_DURING_STREAM)) as pool:
            with paused(tiny_server.engine):  # all of them reach the same step
                together = pool.submit(_stream_text, c, good)
                bad = [pool.submit(c.post, "/generate", json=b) for b in BAD_DURING_STREAM]
                wait_until(lambda: sum(bool(v) for v in list(groups.values()))
                           + sum(f.done() for f in bad) == 1 + len(bad))
            statuses = [f.result().status_code for f in bad]
            assert together.result() == alone and alone[1] == "length", statuses
    tiny_server.wait_idle()


@pytest.fixture(scope="module")
def small_queue(tiny_model_dir):
    engine = Engine(str(tiny_model_dir), kv_tokens=4096, max_running=2, max_queue=4, weights="fp32")
    live = start_server(engine)
    yield live
    live.stop()
    engine.shutdown()


def test_burst_past_max_queue_gets_503_and_loses_no_accepted_request(small_queue):
    """Needs Engine.submit to count admission where it enforces it (engine side of issue 19)."""
    body = {"text": "x", "sampling_params": {"max_new_tokens": 4, "ignore_eos": True}}
    num = 24
    answered: list = []
    lock = threading.Lock()

    def send() -> None:
        with small_queue.client() as c:
            r = c.post("/generate", json=body)
        with lock:
            answered.append(r)

    groups = small_queue.server.config.app.state.tines.dispatcher.groups
    threads = [threading.Thread(target=send) for _ in range(num)]
    with paused(small_queue.engine):  # nothing drains the queue while the burst arrives
        for t in threads:
            t.start()
        wait_until(lambda: len(answered) + sum(bool(v) for v in list(groups.values())) == num)
    for t in threads:
        t.join(120)
    refused = [r for r in answered if r.status_code == 503]
    accepted = [r for r in answered if r.status_code == 200]
    assert len(refused) + len(accepted) == num
    assert refused and all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert accepted and all(r.json()["meta_info"]["completion_tokens"] == 4 for r in accepted)
    small_queue.wait_idle()
