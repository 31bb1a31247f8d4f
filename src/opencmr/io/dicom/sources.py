"""Where DICOM files come from: a folder tree, a single file, or a ``.zip`` archive.

Exports arrive as nested folders, with or without ``.dcm`` extensions, with a
DICOMDIR and with non-DICOM files (reports, thumbnails, ``.DS_Store``) mixed
in, or zipped. A :class:`Source` names one file (or one archive member) and
reads it on demand; nothing is unpacked to disk.

References
----------
.. [1] DICOM PS3.10, 7.1 DICOM File Meta Information (the ``DICM`` prefix) and
   PS3.10, 8 DICOM File Service (DICOMDIR).
   https://dicom.nema.org/medical/dicom/current/output/chtml/part10/chapter_7.html
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from opencmr.errors import InputError, describe_exception

__all__ = ["Source", "is_zip_archive", "list_sources"]

_MAX_MEMBER_BYTES = 2**31
"""Largest archive member read into memory (a guard against zip bombs)."""


@dataclass(frozen=True)
class Source:
    """One DICOM candidate: a file, or a member of a zip archive.

    Parameters
    ----------
    path : pathlib.Path
        The file, or the archive that holds the member.
    member : str or None
        Name of the member inside the archive.
    """

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        """Base name, for messages and listings."""
        return Path(self.member).name if self.member else self.path.name

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def _open(self) -> IO[bytes] | Path:
        if self.member is None:
            return self.path
        archive = _archive(self.path, self.path.stat().st_mtime_ns)
        info = archive.getinfo(self.member)
        if info.file_size > _MAX_MEMBER_BYTES:
            raise InputError(self, f"archive member of {info.file_size} bytes is too large")
        return archive.open(info)  # a seekable stream: headers are read without unpacking the pixel data

    def read_header(self) -> Dataset | None:
        """The header without pixel data; None when this is not a DICOM file.

        Raises
        ------
        InputError
            The file starts like DICOM but its header cannot be parsed, or it cannot be read at all.
        """
        try:
            return pydicom.dcmread(self._open(), stop_before_pixels=True)
        except InvalidDicomError:
            return None
        except OSError as exc:
            raise InputError(self, f"cannot be read ({exc.strerror or describe_exception(exc)})") from None
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser failure is a corrupt file
            raise InputError(
                self, f"cannot read the DICOM header (truncated or corrupt file: {describe_exception(exc)})"
            ) from None

    def read(self) -> Dataset:
        """The whole dataset, pixel data included (decoded later, on access)."""
        try:
            return pydicom.dcmread(self._open())
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - it parsed once; a failure now is a corrupt file
            raise InputError(self, f"cannot be read ({describe_exception(exc)})") from None


def is_zip_archive(path: Path) -> bool:
    """Whether ``path`` is a zip file: it starts with a local-file header and is not a DICOM file.

    (:func:`zipfile.is_zipfile` looks for an end record anywhere in the last
    64 KiB, which the pixel data of a DICOM file can contain by chance.)
    """
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return head[:4] == b"PK\x03\x04" and head[128:132] != b"DICM" and zipfile.is_zipfile(path)


@functools.lru_cache(maxsize=4)
def _archive(path: Path, mtime_ns: int) -> zipfile.ZipFile:
    """An open archive, kept for the files read after it (its directory is parsed once, not once per member)."""
    return zipfile.ZipFile(path)


def list_sources(path: Path) -> Iterator[Source]:
    """Every file under a folder (recursively), every member of a zip archive, or the single file ``path``.

    Raises
    ------
    InputError
        ``path`` does not exist, or the archive is unreadable or uses unsafe member names.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            if is_zip_archive(file):
                yield from _archive_sources(file)
            else:
                yield Source(file)
        return
    if is_zip_archive(path):
        yield from _archive_sources(path)
        return
    yield Source(path)


def _archive_sources(path: Path) -> Iterator[Source]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(path, f"is not a readable zip archive ({describe_exception(exc)})") from None
    for name in sorted(names):
        if name.startswith("/") or ".." in Path(name).parts:
            raise InputError(path, f"archive member {name!r} has an unsafe path")
        yield Source(path, name)
