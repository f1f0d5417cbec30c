"""A CTranslate2 ``model.bin`` checked whole before anyone loads it (:mod:`streaming.asr.models`)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from streaming.errors import ModelLoadFailed


class ModelNotInstalled(ModelLoadFailed):
    """A known model whose files are not (or not all) on this machine: ``make models`` installs it."""


def check_model_file(path: Path) -> int:
    """Walk a CTranslate2 ``model.bin``'s tensor table; returns the tensor count.

    Raises :class:`ModelNotInstalled` when the file ends inside the table or has bytes after it
    (parts missing, or joined in the wrong order): CTranslate2 would fail later, less clearly.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:

        def read(fmt: str) -> int:
            data = handle.read(struct.calcsize(fmt))
            if len(data) < struct.calcsize(fmt):
                raise EOFError
            return struct.unpack("<" + fmt, data)[0]

        def skip_string() -> None:
            handle.seek(read("H"), os.SEEK_CUR)

        count = done = 0
        try:
            read("I")
            skip_string()
            read("I")
            count = read("I")
            for done in range(count):  # noqa: B007 (the count reached is reported)
                skip_string()
                handle.seek(4 * read("B"), os.SEEK_CUR)
                read("B")
                handle.seek(read("I"), os.SEEK_CUR)
                if handle.tell() > size:
                    raise EOFError
            for _ in range(read("I")):
                skip_string()
                skip_string()
        except EOFError:
            ended = f"{path} is cut short: it ends in tensor {done + 1} of {count}"
            raise ModelNotInstalled(ended) from None
        if handle.tell() != size:
            raise ModelNotInstalled(f"{path} has {size - handle.tell()} bytes after its last tensor")
    return count
