"""`tines serve` as a process: it serves, logs one line per request, and on SIGTERM stops
accepting, lets a short request finish, aborts a long one after --shutdown-timeout (its
stream ends with finish_reason "abort"), and exits 0."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

from tests.server.live_server import start_serve_process


def stream_generate(url: str, body: dict, out: dict) -> None:
    events = out["events"] = []  # filled as they arrive
    try:
        with httpx.Client(timeout=60) as c, c.stream("POST", url + "/generate", json={**body, "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    events.append(json.loads(line[6:]))
                elif line == "data: [DONE]":
                    out["done"] = True
    except httpx.HTTPError as e:
        out["error"] = repr(e)


@pytest.mark.timeout(420)  # a hang guard: start-up alone is slow on a busy machine
def test_serve_then_sigterm_exits_0(tiny_model_dir):
    proc, url = start_serve_process("--model", str(tiny_model_dir), "--kv-tokens", "4096",
                                    "--max-running", "8", "--shutdown-timeout", "3")
    try:
        ok = httpx.post(url + "/generate", json={"text": "hi", "rid": "cli-ok",
                                                  "sampling_params": {"max_new_tokens": 3}})
        assert ok.status_code == 200
        short, long = {}, {}
        threads = [threading.Thread(target=stream_generate, args=(url, {
            "text": "short", "sampling_params": {"max_new_tokens": 2, "ignore_eos": True}}, short)),
            threading.Thread(target=stream_generate, args=(url, {
                "text": "long", "sampling_params": {"max_new_tokens": 2000, "ignore_eos": True}}, long))]
        for t in threads:
            t.start()
        while not (short.get("events") and long.get("events")):  # both running
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.HTTPError):  # no longer accepting
            httpx.post(url + "/generate", json={"text": "late"}, timeout=2)
        code = proc.wait(timeout=30)
        for t in threads:
            t.join(timeout=10)
        log = proc.stdout.read()
        assert code == 0, log
        assert short.get("done") and short["events"][-1]["meta_info"]["finish_reason"]["type"] == "length"
        final = long["events"][-1]  # aborted at the deadline, and told so properly
        assert long.get("done") and final["meta_info"]["finish_reason"]["type"] == "abort"
        assert 0 < final["meta_info"]["completion_tokens"] < 2000
        assert "Exception" not in log and "Traceback" not in log, log
        line = next(x for x in log.splitlines() if "cli-ok" in x)
        assert "in=" in line and "cached=" in line and "out=3" in line and "time=" in line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
