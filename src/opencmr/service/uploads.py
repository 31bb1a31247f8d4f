"""Checking an uploaded study and unpacking it into its job folder.

An upload is a single ``.nii``/``.nii.gz`` file or a ``.zip`` holding DICOM
files (recognised by the ``DICM`` preamble, whatever their names), NIfTI files
(by their header) and, for an ACDC patient folder, its ``Info.cfg``. A zip is
refused, before anything is written, when a member name is absolute or climbs
out with ``..``, is a symbolic link or encrypted, when it holds too many files,
or when its declared uncompressed size or compression ratio is too large; while
unpacking, the bytes actually inflated are counted too, so a zip that lies
about its sizes is stopped at the limit. Every file lands inside the job's
``upload/`` folder. Files of any other kind are refused with a message that
names them (to the uploader only; the service's log never shows names from
inside an upload).

Every NIfTI file, uploaded alone or inside a zip, has its header read (only
the header: a ``.nii.gz`` is not inflated further) before it is accepted: an
image whose voxel data would take more than
:attr:`UploadLimits.max_image_bytes` is refused with 413 (a small ``.nii.gz``
whose header claims a huge image, a gzip bomb, never reaches a worker), and a
header with impossible dimensions (``dim[0]`` outside 1-7, a size below 1) or
an unknown data type is refused with 415.
"""

from __future__ import annotations

import gzip
import math
import re
import shutil
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from opencmr.errors import OpenCMRError

__all__ = ["UploadLimits", "UploadRejected", "is_dicom_file", "is_nifti_file", "prepare_upload"]

_CHUNK = 1 << 20
_IGNORED = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$|Thumbs\.db$|desktop\.ini$)")
_NIFTI_MAGIC = (b"n+1\x00", b"ni1\x00", b"n+2\x00")
#: Bits per voxel of each NIfTI ``datatype`` code (the width nibabel reads the voxels with).
_NIFTI_DATATYPE_BITS: dict[int, tuple[int, str]] = {
    1: (1, "binary"),
    2: (8, "uint8"),
    4: (16, "int16"),
    8: (32, "int32"),
    16: (32, "float32"),
    32: (64, "complex64"),
    64: (64, "float64"),
    128: (24, "rgb24"),
    256: (8, "int8"),
    512: (16, "uint16"),
    768: (32, "uint32"),
    1024: (64, "int64"),
    1280: (64, "uint64"),
    1536: (128, "float128"),
    1792: (128, "complex128"),
    2048: (256, "complex256"),
    2304: (32, "rgba32"),
}


class UploadRejected(OpenCMRError):
    """An upload that is not accepted; ``status`` is the HTTP status to answer with (400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class UploadLimits:
    """Limits on an upload (see :class:`~opencmr.service.config.ServiceConfig`).

    Attributes
    ----------
    max_files : int
        Most files in a zip.
    max_uncompressed_bytes : int
        Largest total uncompressed size of a zip's members.
    max_compression_ratio : float
        Largest uncompressed/compressed ratio of a zip member and of the whole zip.
    max_image_bytes : int
        Largest voxel data of one NIfTI image, as its header declares it
        (dimensions times the width of its data type), whether uploaded alone or
        inside a zip. The default, 2 GiB, is twenty times a large cine
        (256 x 256 x 16 slices x 50 frames of int16 is 100 MiB); the analysis
        holds the image as floating point, so it needs up to four times more
        memory than this.
    """

    max_files: int = 20000
    max_uncompressed_bytes: int = 8 << 30
    max_compression_ratio: float = 200.0
    max_image_bytes: int = 2 << 30


def is_dicom_file(path: Path) -> bool:
    """Whether a file carries the DICOM Part 10 preamble (``DICM`` at byte 128)."""
    with path.open("rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _nifti_header_ok(head: bytes) -> bool:
    if len(head) < 348:
        return False
    sizeof_hdr_le = int.from_bytes(head[:4], "little")
    sizeof_hdr_be = int.from_bytes(head[:4], "big")
    if 348 in (sizeof_hdr_le, sizeof_hdr_be):
        return head[344:348] in _NIFTI_MAGIC
    if 540 in (sizeof_hdr_le, sizeof_hdr_be):  # NIfTI-2
        return head[4:8] in _NIFTI_MAGIC
    return False


def _read_head(path: Path) -> bytes | None:
    """The first 544 bytes of a ``.nii`` (or of a ``.nii.gz`` once inflated); None when unreadable."""
    try:
        if path.name.lower().endswith(".nii.gz"):
            with gzip.open(path, "rb") as f:
                return f.read(544)
        if path.name.lower().endswith(".nii"):
            with path.open("rb") as f:
                return f.read(544)
    except (OSError, EOFError, zlib.error):
        return None
    return None


def is_nifti_file(path: Path) -> bool:
    """Whether a ``.nii`` or ``.nii.gz`` file starts with a NIfTI-1 or NIfTI-2 header."""
    head = _read_head(path)
    return head is not None and _nifti_header_ok(head)


def _size_text(n_bytes: int) -> str:
    if n_bytes >= 1 << 30:
        return f"{n_bytes / 2**30:.1f} GiB"
    return f"{n_bytes / 2**20:.1f} MiB"


def _nifti_image_shape(head: bytes) -> tuple[tuple[int, ...], int, str]:
    """The shape, bits per voxel and data type name that a NIfTI-1/NIfTI-2 header declares.

    Raises
    ------
    ValueError
        With what is wrong (the caller adds which file).
    """
    if 348 in (int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")):
        order = "<" if int.from_bytes(head[:4], "little") == 348 else ">"
        datatype, _bitpix = struct.unpack_from(order + "hh", head, 70)
        dim = struct.unpack_from(order + "8h", head, 40)
        vox_offset = struct.unpack_from(order + "f", head, 108)[0]
    else:  # NIfTI-2 (checked by _nifti_header_ok)
        order = "<" if int.from_bytes(head[:4], "little") == 540 else ">"
        datatype, _bitpix = struct.unpack_from(order + "hh", head, 12)
        dim = struct.unpack_from(order + "8q", head, 16)
        vox_offset = struct.unpack_from(order + "q", head, 168)[0]
    if not 1 <= dim[0] <= 7:
        raise ValueError(f"its header declares {dim[0]} dimensions (dim[0]); a NIfTI image has 1 to 7")
    shape = tuple(int(n) for n in dim[1 : dim[0] + 1])
    if any(n < 1 for n in shape):
        raise ValueError(f"its header declares a size below 1 ({' x '.join(map(str, shape))})")
    if datatype not in _NIFTI_DATATYPE_BITS:
        raise ValueError(f"its header declares an unknown data type (code {datatype})")
    if not (math.isfinite(vox_offset) and vox_offset >= 0):
        raise ValueError(f"its header declares an invalid data offset ({vox_offset})")
    bits, name = _NIFTI_DATATYPE_BITS[datatype]
    return shape, bits, name


def _check_nifti_image(path: Path, limits: UploadLimits, what: str) -> None:
    """Refuse a NIfTI file whose header is impossible (415) or declares too large an image (413).

    Only the header is read. The size is the product of the dimensions times
    the width of the ``datatype`` (which nibabel reads the voxels with;
    ``bitpix`` is redundant and not trusted). ``what`` names the file in the
    messages ("the NIfTI image" or a zip member's name).
    """
    head = _read_head(path)
    if head is None or not _nifti_header_ok(head):
        raise UploadRejected(415, f"{what} has no NIfTI header")
    try:
        shape, bits, dtype_name = _nifti_image_shape(head)
    except ValueError as exc:
        raise UploadRejected(415, f"{what} is not a valid NIfTI image: {exc}") from None
    n_bytes = (math.prod(shape) * bits + 7) // 8
    if n_bytes > limits.max_image_bytes:
        raise UploadRejected(
            413,
            f"{what} is {' x '.join(map(str, shape))} {dtype_name} voxels, {_size_text(n_bytes)} uncompressed; "
            f"images up to {_size_text(limits.max_image_bytes)} are accepted",
        )


def _safe_member_path(name: str) -> PurePosixPath:
    """The relative path of a zip member, or UploadRejected if it is absolute or climbs out."""
    if "\x00" in name:
        raise UploadRejected(400, "the zip holds a member name with a NUL byte")
    unified = name.replace("\\", "/")
    path = PurePosixPath(unified)
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UploadRejected(400, f"the zip holds an absolute path ({name!r}); only relative paths are accepted")
    if any(part == ".." for part in path.parts):
        raise UploadRejected(400, f"the zip holds a path that leaves its folder ({name!r}); '..' is not accepted")
    return path


def _check_zip(archive: zipfile.ZipFile, limits: UploadLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    total = 0
    compressed = 0
    for info in archive.infolist():
        path = _safe_member_path(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UploadRejected(400, f"the zip holds a symbolic link ({info.filename!r}); links are not accepted")
        if info.flag_bits & 0x1:
            raise UploadRejected(400, "the zip is encrypted; upload an unencrypted zip")
        if info.is_dir() or _IGNORED.search(info.filename):
            continue
        members.append((info, path))
        if len(members) > limits.max_files:
            raise UploadRejected(413, f"the zip holds more than {limits.max_files} files")
        total += info.file_size
        compressed += info.compress_size
        if total > limits.max_uncompressed_bytes:
            raise UploadRejected(
                413, f"the zip would inflate to more than {limits.max_uncompressed_bytes / 2**20:.0f} MiB"
            )
        if info.file_size > 1 << 20 and info.file_size > limits.max_compression_ratio * max(info.compress_size, 1):
            raise UploadRejected(
                413,
                f"a zip member is compressed {info.file_size / max(info.compress_size, 1):.0f}:1, more than the "
                f"{limits.max_compression_ratio:.0f}:1 accepted (a zip bomb?)",
            )
    if total > 1 << 20 and total > limits.max_compression_ratio * max(compressed, 1):
        raise UploadRejected(413, f"the zip is compressed {total / max(compressed, 1):.0f}:1, more than accepted")
    if not members:
        raise UploadRejected(400, "the zip is empty")
    return members


def _extract(
    archive: zipfile.ZipFile, members: list[tuple[zipfile.ZipInfo, PurePosixPath]], dest: Path, limits: UploadLimits
) -> list[Path]:
    root = dest.resolve()
    written: list[Path] = []
    total = 0
    for info, rel in members:
        target = (root / Path(*rel.parts)).resolve()
        if root not in target.parents:
            raise UploadRejected(400, f"the zip holds a path that leaves its folder ({info.filename!r})")
        if target.exists():
            raise UploadRejected(400, f"the zip holds {info.filename!r} twice")
        size = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, target.open("xb") as out:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    total += len(chunk)
                    if size > info.file_size or total > limits.max_uncompressed_bytes:
                        raise UploadRejected(413, "the zip inflates to more than it declares or than is accepted")
                    out.write(chunk)
        except OSError:  # a member that is also a folder, a name too long, ...: the client's zip, not a server error
            raise UploadRejected(
                400,
                "the zip holds a path that cannot be unpacked (a file and a folder of the same "
                "name, or a name too long)",
            ) from None
        written.append(target)
    return written


def _kind(path: Path) -> str | None:
    if path.name.lower().endswith((".nii", ".nii.gz")) and is_nifti_file(path):
        return "nifti"
    if path.name == "Info.cfg" and path.stat().st_size <= 4096:
        return "info"
    if is_dicom_file(path):
        return "dicom"
    return None


def _study_path(dest: Path, files: list[Path], limits: UploadLimits) -> tuple[Path, str]:
    kinds = {f: _kind(f) for f in files}
    bad = [f.relative_to(dest).as_posix() for f, k in kinds.items() if k is None]
    if bad:
        shown = ", ".join(repr(b) for b in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise UploadRejected(
            415,
            f"the upload holds {len(bad)} file(s) that are neither DICOM nor NIfTI: {shown}. Accepted: DICOM files "
            "(with the 'DICM' preamble), .nii/.nii.gz images and an ACDC Info.cfg",
        )
    dicom = [f for f, k in kinds.items() if k == "dicom"]
    nifti = [f for f, k in kinds.items() if k == "nifti"]
    for f in nifti:
        _check_nifti_image(f, limits, repr(f.relative_to(dest).as_posix()))
    if dicom and nifti:
        raise UploadRejected(400, "the upload mixes DICOM and NIfTI files; upload one study in one format")
    if dicom:
        return dest, "dicom"
    if not nifti:
        raise UploadRejected(415, "the upload holds no DICOM or NIfTI image")
    from opencmr.io.acdc import is_acdc_folder

    folders = {f.parent for f in nifti}
    if len(folders) == 1 and is_acdc_folder(next(iter(folders))):
        return next(iter(folders)), "nifti"
    images = [f for f in nifti if not re.search(r"_gt\.nii(\.gz)?$", f.name)]
    if len(images) != 1:
        raise UploadRejected(
            400,
            f"the upload holds {len(images)} NIfTI images; upload one cine (a 4D .nii.gz) or one ACDC patient folder",
        )
    return images[0], "nifti"


def prepare_upload(
    received: Path, filename: str, dest: Path, limits: UploadLimits = UploadLimits()
) -> tuple[Path, str]:
    """Check an uploaded file and unpack it into ``dest`` (created); the path to analyse and its format.

    Parameters
    ----------
    received : Path
        The uploaded bytes, as saved (removed afterwards when it is a zip).
    filename : str
        The name the client gave it: ``*.zip``, ``*.nii`` or ``*.nii.gz``.
    dest : Path
        The job's upload folder; nothing is written outside it.
    limits : UploadLimits
        Zip limits and the largest NIfTI image.

    Returns
    -------
    tuple of (Path, str)
        A NIfTI file, an ACDC folder or a DICOM folder inside ``dest``, and
        ``"nifti"`` or ``"dicom"``.

    Raises
    ------
    UploadRejected
        With the HTTP status and a message for the uploader.
    """
    dest.mkdir(parents=True, exist_ok=True)
    lower = filename.lower()
    if lower.endswith((".nii", ".nii.gz")):
        target = dest / ("study.nii.gz" if lower.endswith(".gz") else "study.nii")
        shutil.move(received, target)
        if not is_nifti_file(target):
            raise UploadRejected(415, "the file is named .nii/.nii.gz but has no NIfTI header")
        _check_nifti_image(target, limits, "the NIfTI image")
        return target, "nifti"
    if not lower.endswith(".zip"):
        raise UploadRejected(
            415, "unsupported upload: send a .zip of a DICOM series or of NIfTI files, or a single .nii/.nii.gz"
        )
    try:
        with zipfile.ZipFile(received) as archive:
            members = _check_zip(archive, limits)
            files = _extract(archive, members, dest, limits)
    except zipfile.BadZipFile:
        raise UploadRejected(400, "the file is not a valid zip archive") from None
    except (NotImplementedError, RuntimeError, zlib.error, EOFError) as exc:  # unsupported method, corrupt data
        raise UploadRejected(415, f"the zip cannot be unpacked ({exc})") from None
    finally:
        received.unlink(missing_ok=True)
    return _study_path(dest, files, limits)
