"""Several models behind one `tines serve`, chosen by the request's `model`, loaded on first
use, the least recently used one unloaded past --max-loaded-models."""

from __future__ import annotations

import shutil
import threading

import httpx

import tines
from tests.server.live_server import start_serve_process
from tines.local import LocalBackend
from tines.remote import RemoteBackend
from tines.runtime.engine.engine import Engine


def _loaded(url: str) -> dict[str, bool]:
    return {m["id"]: m["loaded"] for m in httpx.get(url + "/v1/models").json()["data"]}


def test_three_models_two_loaded_openai_client_by_name(tiny_model_dir, tmp_path):
    dirs = []
    for name in ("tiny-a", "tiny-b", "tiny-c"):
        shutil.copytree(tiny_model_dir, tmp_path / name)
        dirs += ["--model", str(tmp_path / name)]
    proc, url = start_serve_process(*dirs, "--max-loaded-models", "2", "--no-compile",
                                    "--kv-tokens", "2048")
    try:
        import openai

        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        assert _loaded(url) == {"tiny-a": False, "tiny-b": False, "tiny-c": False}
        answers: dict[str, str] = {}

        def ask(model: str) -> None:
            r = client.chat.completions.create(model=model, max_tokens=6, temperature=0,
                                               messages=[{"role": "user", "content": "Hello"}])
            answers[model] = r.choices[0].message.content

        threads = [threading.Thread(target=ask, args=(m,)) for m in ("tiny-a", "tiny-b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert answers["tiny-a"] == answers["tiny-b"]  # the same weights, greedy
        assert _loaded(url) == {"tiny-a": True, "tiny-b": True, "tiny-c": False}
        ask("tiny-b")  # b is now the most recently used: loading c unloads a
        ask("tiny-c")
        assert answers["tiny-c"] == answers["tiny-a"]
        assert _loaded(url) == {"tiny-a": False, "tiny-b": True, "tiny-c": True}
        native = httpx.post(url + "/generate", timeout=120, json={
            "model": "tiny-c", "text": "Hello", "sampling_params": {"max_new_tokens": 2}})
        assert native.status_code == 200 and native.json()["meta_info"]["completion_tokens"] == 2
        missing = httpx.post(url + "/v1/completions", json={"model": "nope", "prompt": "x"})
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "model"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@tines.program
def _pick(s):
    s += "Hello, my name is"
    s += tines.gen("name", max_tokens=6, temperature=0)
    s += " and I like"
    s += tines.select("thing", [" tea", " rivers", " stone walls"])


def test_remote_backend_picks_a_model_by_name(tiny_model_dir, tokenizer_dir, tmp_path):
    from tests.tiny_models import save_tiny_model

    other = save_tiny_model(tmp_path / "tiny-other", tokenizer_dir, "llama", seed=7)
    shutil.copytree(tiny_model_dir, tmp_path / "tiny-main")
    proc, url = start_serve_process("--model", str(tmp_path / "tiny-main"), "--model", str(other),
                                    "--no-compile", "--kv-tokens", "2048", "--weights", "fp32")
    local = Engine(str(other), kv_tokens=2048, weights="fp32")
    try:
        by_name = _pick.run(backend=RemoteBackend(url, model="tiny-other"))
        default = _pick.run(backend=RemoteBackend(url))
        alone = _pick.run(backend=LocalBackend(local))
        assert by_name.text() == alone.text()  # the named model answered, not the first
        assert default.text() != by_name.text()
        assert _loaded(url) == {"tiny-main": True, "tiny-other": True}
    finally:
        local.shutdown()
        proc.terminate()
        proc.wait(timeout=60)


def test_without_the_key_nothing_is_loaded_or_revealed(tiny_model_dir, tmp_path):
    dirs = []
    for name in ("tiny-a", "tiny-b"):
        shutil.copytree(tiny_model_dir, tmp_path / name)
        dirs += ["--model", str(tmp_path / name)]
    proc, url = start_serve_process(*dirs, "--api-key", "k", "--no-compile", "--kv-tokens", "2048")
    try:
        for body in ({"model": "tiny-b", "text": "x"}, {"model": "nope", "text": "x"}):
            r = httpx.post(url + "/generate", json=body)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        big = httpx.post(url + "/generate", content=b"x" * (9 << 20))
        assert big.status_code == 401
        models = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer k"}).json()
        assert not any(m["loaded"] for m in models["data"])
        assert httpx.get(url + "/health").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)
