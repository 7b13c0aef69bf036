"""LoRA adapters over HTTP: the OpenAI routes pick one by "MODEL:ADAPTER", the native route
by `lora_path`; adapters load and unload through the admin routes while the server serves."""

from __future__ import annotations

import openai
import pytest

from tests.server.live_server import start_server
from tests.tiny_models import save_random_adapter
from tines.runtime.engine.engine import Engine
from tines.runtime.sampling_params import SamplingParams

pytest.importorskip("peft")
PROMPT = "The river ran past the old mill"


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("server-adapters")
    save_random_adapter(tiny_model_dir, root / "one", ["q_proj", "v_proj", "down_proj"], seed=5)
    save_random_adapter(tiny_model_dir, root / "two", ["k_proj", "o_proj"], seed=6)
    return root


@pytest.fixture(scope="module")
def server(tiny_model_dir, adapter_dir):
    engine = Engine(str(tiny_model_dir), kv_tokens=2048, weights="fp32",
                    lora_adapters=(("one", str(adapter_dir / "one")),))
    live = start_server(engine, model_name="tiny")
    yield live
    live.stop()
    engine.shutdown()


def expected(server, lora: str | None) -> str:
    params = SamplingParams(temperature=0, max_new_tokens=8, ignore_eos=True, lora=lora)
    return server.engine.generate(PROMPT, params).outputs[0].text


def test_models_list_the_adapters(server):
    ids = [m.id for m in server.openai().models.list().data]
    assert ids == ["tiny", "tiny:one"]


def test_the_openai_client_picks_an_adapter_by_model_name(server):
    client = server.openai()
    kw = dict(prompt=PROMPT, max_tokens=8, temperature=0, extra_body={"ignore_eos": True})
    tuned = client.completions.create(model="tiny:one", **kw).choices[0].text
    base = client.completions.create(model="tiny", **kw).choices[0].text
    assert tuned == expected(server, "one") and base == expected(server, None) and tuned != base


def test_the_native_route_picks_an_adapter_by_lora_path(server):
    r = server.client().post("/generate", json={"text": PROMPT, "lora_path": "one", "sampling_params": {
        "max_new_tokens": 8, "temperature": 0, "ignore_eos": True}})
    assert r.status_code == 200 and r.json()["text"] == expected(server, "one")


def test_an_unknown_adapter_is_404_naming_the_model(server):
    with pytest.raises(openai.NotFoundError, match="tiny:nope"):
        server.openai().completions.create(model="tiny:nope", prompt="x", max_tokens=2)


def test_adapters_load_and_unload_through_the_admin_routes(server, adapter_dir):
    http = server.client()
    r = http.post("/load_lora_adapter", json={"lora_name": "two", "lora_path": str(adapter_dir / "two")})
    assert r.status_code == 200 and r.json()["adapters"] == ["one", "two"]
    tuned = server.openai().completions.create(model="tiny:two", prompt=PROMPT, max_tokens=8,
                                               temperature=0, extra_body={"ignore_eos": True})
    assert tuned.choices[0].text == expected(server, "two")
    assert http.post("/unload_lora_adapter", json={"lora_name": "two"}).status_code == 200
    assert http.post("/unload_lora_adapter", json={"lora_name": "two"}).status_code == 404


def test_a_bad_adapter_folder_is_400(server, tmp_path):
    r = server.client().post("/load_lora_adapter", json={"lora_name": "bad", "lora_path": str(tmp_path)})
    assert r.status_code == 400 and r.json()["error"]["param"] == "lora_path"
