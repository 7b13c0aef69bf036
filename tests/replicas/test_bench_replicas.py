"""bench/replicas.py's bounded regime and its workloads: the inputs the router comparison
rests on (distinct prefixes per subject, even and shuffled), the KV sizes each configuration
gets, valid answers from the program on a real engine, and the tally's in-flight cap."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.replicas import replica_options
from bench.replicas_workloads import ChatSessions, MmluSubjects
from tines.runtime.replicas.prefix_index import prefix_keys


def test_subjects_share_only_the_header_line():
    """MMLU's header, "The following are multiple choice questions (with answers) about",
    fills the router's first 64-character block; from the second block on, every subject's
    prefix is its own."""
    shots = MmluSubjects(10).shots
    assert len({prefix_keys(s, 64)[0] for s in shots}) == 1
    assert len({prefix_keys(s, 64)[1] for s in shots}) == 10


def test_questions_are_even_over_subjects_and_interleaved():
    inputs = MmluSubjects(4).make_inputs(40)
    order = [x["shots"] for x in inputs]
    assert sorted(Counter(order).values()) == [10, 10, 10, 10]
    cyclic = [order[i % 4] for i in range(40)]
    assert order != cyclic  # a cyclic order would hand round-robin a partition by accident
    assert inputs == MmluSubjects(4).make_inputs(40)


def test_subject_count_is_checked():
    with pytest.raises(ValueError):
        MmluSubjects(0)


def test_single_replica_gets_the_pairs_total_kv():
    base = {"model": "m"}
    assert replica_options(base, 1, 6144)["kv_tokens"] == 12288
    assert replica_options(base, 2, 6144)["kv_tokens"] == 6144
    assert replica_options(base, 1, None) == base  # unbounded: the engine default


def test_program_answers_a_letter_on_a_real_engine(tiny_model_dir):
    from tines.local import LocalBackend
    from tines.runtime.engine.engine import Engine

    workload = MmluSubjects(3, concurrency=2)
    inputs = workload.make_inputs(3)
    with Engine(str(tiny_model_dir), kv_tokens=8192, weights="fp32") as engine:
        answers = workload.run_tines(LocalBackend(engine), inputs)
    assert [workload.check(a) for a in answers] == [True, True, True]


def test_chat_sessions_sizes_are_checked():
    with pytest.raises(ValueError):
        ChatSessions(0, 8)


def test_token_tally_caps_requests_in_flight_and_counts_tokens():
    """Six threads through a tally capped at 2: the server never sees more than 2 at once,
    and the tokens of every answer's meta_info are summed."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    from bench.replicas import TokenTally

    active, peak, lock = [0], [0], threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers["content-length"]))
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.02)  # overlap the callers; the assertion does not depend on it
            with lock:
                active[0] -= 1
            body = json.dumps({"meta_info": {"prompt_tokens": 10, "cached_tokens": 4}}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.send_header("x-tines-replica", "r1")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tally = TokenTally(max_in_flight=2)
    url = f"http://127.0.0.1:{server.server_address[1]}/generate"
    with httpx.Client(transport=tally) as client:
        threads = [threading.Thread(target=client.post, args=(url,),
                                    kwargs={"json": {"text": f"prompt {i}"}}) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    server.shutdown()
    assert peak[0] <= 2
    assert (tally.prompt_tokens, tally.cached_tokens) == (60, 24)
    assert tally.heads_per_replica() == [6]
