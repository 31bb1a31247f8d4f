"""The cohort manifest: a CSV with one study per row, read and checked before any work starts.

Columns
-------
``study`` (required)
    The study: a NIfTI file, an ACDC patient folder or a DICOM folder
    (anything :func:`opencmr.io.read.read_study` reads). A relative path is
    resolved against the manifest's folder, not the working directory.
``id`` (optional)
    The study's name in the results: its output folder ``OUTDIR/<id>`` and its
    row in ``cohort.csv``. Letters, digits, ``.``, ``_`` and ``-``, starting
    with a letter or digit; unique, ignoring case (case-insensitive file
    systems). Default: the study's file or folder name without ``.nii.gz``,
    ``.nii``, ``.zip`` or ``.dcm``, other characters replaced by ``_``.
``height_cm``, ``weight_kg``, ``hr_bpm`` (optional)
    Positive numbers; an empty cell means "from the study's metadata".
``sex`` (optional)
    ``M`` or ``F`` (``male``/``female`` accepted); empty for unknown.

Other columns (site, notes...) are allowed and ignored; :attr:`Manifest.ignored_columns` names them.

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "cohort.csv").write_text("study,height_cm\\npatient001,178\\n")
>>> manifest = read_manifest(folder / "cohort.csv")
>>> manifest.entries[0].id, manifest.entries[0].height_cm, manifest.entries[0].study == folder / "patient001"
('patient001', 178.0, True)
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opencmr.errors import InputError

__all__ = ["COLUMNS", "Manifest", "ManifestEntry", "read_manifest", "study_id"]

#: The columns the manifest understands (only ``study`` is required).
COLUMNS = ("study", "id", "height_cm", "weight_kg", "sex", "hr_bpm")
_NUMBERS = ("height_cm", "weight_kg", "hr_bpm")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_ID = 128
#: Names of the batch's own files in OUTDIR, which no study folder may take.
RESERVED_IDS = frozenset({"cohort.csv", "batch_summary.json"})


@dataclass(frozen=True)
class ManifestEntry:
    """One study of the cohort, as the manifest gives it."""

    id: str
    study: Path
    """Absolute (resolved against the manifest's folder when relative)."""
    line: int
    """Line of the manifest file (the header is line 1), for messages."""
    height_cm: float | None = None
    weight_kg: float | None = None
    sex: str | None = None
    hr_bpm: float | None = None


@dataclass(frozen=True)
class Manifest:
    """The checked manifest: its path, the studies in file order, and the columns that were not used."""

    path: Path
    entries: tuple[ManifestEntry, ...]
    ignored_columns: tuple[str, ...] = ()


def study_id(study: str | os.PathLike[str]) -> str:
    """The default id of a study: its name without image suffixes, other than ``[A-Za-z0-9._-]`` as ``_``.

    >>> study_id("/data/cohort/patient 001.nii.gz")
    'patient_001'
    """
    name = Path(study).name
    for suffix in (".nii.gz", ".nii", ".zip", ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-")
    return safe[:_MAX_ID]


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a manifest CSV (see the module docstring).

    Raises
    ------
    InputError
        Naming the manifest and the line: the file cannot be read, has no
        ``study`` column or no rows, a study cell is empty, a number or sex
        cannot be read, an id is not filesystem-safe or is used twice.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError(source, "no such file" if not source.exists() else "is a folder, not a manifest CSV file")
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in (reader.fieldnames or [])]
            rows = [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError:
        raise InputError(source, "is not a UTF-8 text (CSV) file") from None
    except csv.Error as exc:
        raise InputError(source, f"is not a readable CSV file ({exc})") from None
    if "study" not in header:
        found = ", ".join(repr(h) for h in header) if header else "none"
        raise InputError(source, f"has no 'study' column (columns found: {found}; expected {', '.join(COLUMNS)})")
    if len(set(header)) < len(header):
        raise InputError(source, "a column name is used twice in the header")
    base = source.resolve().parent
    entries: list[ManifestEntry] = []
    seen: dict[str, int] = {}
    for line, raw in rows:
        row = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in raw.items()}
        if not any(row.values()):
            continue  # a blank line
        entry = _entry(source, base, line, row, "id" in header)
        key = entry.id.lower()
        if key in seen:
            raise InputError(
                source,
                f"line {line}: id {entry.id!r} is already used on line {seen[key]} (ids must be unique, ignoring case"
                + ("" if "id" in header else "; add an 'id' column to name the studies")
                + ")",
            )
        seen[key] = line
        entries.append(entry)
    if not entries:
        raise InputError(source, "lists no studies")
    ignored = tuple(name for name in header if name not in COLUMNS)
    return Manifest(source, tuple(entries), ignored)


def _entry(source: Path, base: Path, line: int, row: dict[str, str], has_id: bool) -> ManifestEntry:
    def fail(problem: str) -> InputError:
        return InputError(source, f"line {line}: {problem}")

    text = row.get("study", "")
    if not text:
        raise fail("the 'study' cell is empty")
    study = Path(os.path.expanduser(text))
    study = study if study.is_absolute() else base / study
    given = row.get("id", "") if has_id else ""
    ident = given or study_id(study)
    if not ident:
        raise fail(f"no id can be made from the study name {text!r}; give one in an 'id' column")
    if not _SAFE_ID.match(ident) or len(ident) > _MAX_ID:
        raise fail(
            f"id {ident!r} is not a safe folder name: use letters, digits, '.', '_' and '-', starting with a "
            f"letter or digit, at most {_MAX_ID} characters"
        )
    if ident.lower() in RESERVED_IDS:
        raise fail(f"id {ident!r} is the name of a file the batch writes; choose another")
    numbers: dict[str, float | None] = {}
    for name in _NUMBERS:
        cell = row.get(name, "")
        if not cell:
            numbers[name] = None
            continue
        try:
            value = float(cell)
        except ValueError:
            raise fail(f"{name} {cell!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise fail(f"{name} must be a positive number, got {cell!r}")
        numbers[name] = value
    return ManifestEntry(
        id=ident,
        study=study,
        line=line,
        height_cm=numbers["height_cm"],
        weight_kg=numbers["weight_kg"],
        sex=_sex(row.get("sex", ""), fail),
        hr_bpm=numbers["hr_bpm"],
    )


def _sex(cell: str, fail: Callable[[str], InputError]) -> str | None:
    value = cell.strip().upper()
    if not value:
        return None
    if value in ("M", "MALE"):
        return "M"
    if value in ("F", "FEMALE"):
        return "F"
    raise fail(f"sex {cell!r} is not M or F (leave it empty when unknown)")
