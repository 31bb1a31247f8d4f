"""ACDC patient folders.

The layout of the ACDC challenge download (Bernard et al., IEEE TMI 37(11),
2018, doi:10.1109/TMI.2018.2837502)::

    patientNNN/
      Info.cfg                      ED, ES (1-based frames), Group, Height (cm), Weight (kg), NbFrame
      patientNNN_4d.nii.gz          the full cine (optional)
      patientNNN_frameFF.nii.gz     the image at frame FF (1-based)
      patientNNN_frameFF_gt.nii.gz  its expert labels (0 bg, 1 RV, 2 MYO, 3 LV)

When the 4D file is present the study holds every frame and the labels sit at
their frames; otherwise it holds only the ``frameFF`` images (ED and ES).
Frame numbers are converted to opencmr's 0-based convention.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opencmr.errors import InputError
from opencmr.io.nifti import read_nifti
from opencmr.io.study import CineStudy, LabelMap, StudyMetadata
from opencmr.labels import DiagnosticGroup

__all__ = ["AcdcInfo", "is_acdc_folder", "parse_info_cfg", "read_acdc_folder"]

_FRAME_RE = re.compile(r"^(?P<prefix>.+)_frame(?P<frame>\d+)(?P<gt>_gt)?\.nii(\.gz)?$")
_FOURD_RE = re.compile(r"^(?P<prefix>.+)_4d\.nii(\.gz)?$")


@dataclass(frozen=True)
class AcdcInfo:
    """The contents of an ACDC ``Info.cfg`` (frames kept 1-based, as in the file)."""

    ed: int | None = None
    es: int | None = None
    group: DiagnosticGroup | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    n_frames: int | None = None


def parse_info_cfg(path: str | os.PathLike[str]) -> AcdcInfo:
    """Parse ``Info.cfg`` (``Key: value`` lines).

    Raises
    ------
    InputError
        Unreadable file, a line without ``:``, or a value of the wrong type.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(p, f"cannot read Info.cfg ({exc.__class__.__name__})") from exc
    fields: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if ":" not in line:
            raise InputError(p, f"line {number} is not 'Key: value': {line.strip()[:60]!r}")
        key, value = line.split(":", 1)
        fields[key.strip().lower()] = value.strip()
        spelled[key.strip().lower()] = key.strip()

    def number_field(key: str, kind: type) -> float | int | None:
        if key not in fields or fields[key] == "":
            return None
        name = spelled[key]
        try:
            value = float(fields[key])
        except ValueError:
            raise InputError(p, f"{name} is not a number: {fields[key]!r}") from None
        if not np.isfinite(value) or value <= 0:
            raise InputError(p, f"{name} must be positive, got {fields[key]!r}")
        if kind is int:
            if value != int(value):
                raise InputError(p, f"{name} must be a whole number, got {fields[key]!r}")
            return int(value)
        return value

    group = None
    if fields.get("group"):
        try:
            group = DiagnosticGroup.parse(fields["group"])
        except ValueError as exc:
            raise InputError(p, str(exc)) from None
    return AcdcInfo(
        ed=number_field("ed", int),  # type: ignore[arg-type]
        es=number_field("es", int),  # type: ignore[arg-type]
        group=group,
        height_cm=number_field("height", float),
        weight_kg=number_field("weight", float),
        n_frames=number_field("nbframe", int),  # type: ignore[arg-type]
    )


def is_acdc_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether a folder looks like an ACDC patient folder (``Info.cfg`` or ``*_frameFF.nii.gz`` files)."""
    p = Path(folder)
    if not p.is_dir():
        return False
    if (p / "Info.cfg").is_file():
        return True
    return any(_FRAME_RE.match(child.name) and not child.name.startswith(".") for child in p.iterdir())


def read_acdc_folder(folder: str | os.PathLike[str]) -> CineStudy:
    """Read an ACDC patient folder into a :class:`CineStudy` with labels.

    Returns
    -------
    CineStudy
        Frames: every frame when ``*_4d.nii.gz`` exists, otherwise the
        ``frameFF`` images only. Metadata: height, weight, ED/ES (0-based),
        group and number of acquired frames from ``Info.cfg``.

    Raises
    ------
    InputError
        Missing folder or images, an unparsable ``Info.cfg``, label or frame
        files whose geometry does not match, ED/ES outside the cine.
    """
    root = Path(folder)
    if not root.exists():
        raise InputError(root, "folder does not exist")
    if not root.is_dir():
        raise InputError(root, "is not a folder")
    info_path = root / "Info.cfg"
    info = parse_info_cfg(info_path) if info_path.is_file() else AcdcInfo()

    images: dict[int, Path] = {}
    labels: dict[int, Path] = {}
    four_d: list[Path] = []
    prefixes: set[str] = set()
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if m := _FOURD_RE.match(child.name):
            four_d.append(child)
            prefixes.add(m["prefix"])
        elif m := _FRAME_RE.match(child.name):
            prefixes.add(m["prefix"])
            frame = int(m["frame"])
            (labels if m["gt"] else images)[frame] = child
    if len(prefixes) > 1:
        raise InputError(root, f"files of several patients in one folder: {sorted(prefixes)}")
    if len(four_d) > 1:
        raise InputError(root, f"several 4D files: {[f.name for f in four_d]}")
    if not four_d and not images:
        raise InputError(root, "no ACDC images found (expected <patient>_frameFF.nii.gz or <patient>_4d.nii.gz)")
    orphan = sorted(set(labels) - set(images)) if not four_d else []
    if orphan:
        raise InputError(labels[orphan[0]], "label file has no matching image file")
    if any(f < 1 for f in [*images, *labels]):
        raise InputError(root, "frame numbers in ACDC file names are 1-based; found frame 00")

    if info_path.is_file() and (info.ed is None or info.es is None):
        raise InputError(info_path, "gives no ED or no ES frame (expected lines 'ED: <frame>' and 'ES: <frame>')")
    meta = StudyMetadata(
        source=root,
        source_format="acdc",
        patient_id=next(iter(prefixes)),
        height_cm=info.height_cm,
        weight_kg=info.weight_kg,
        ed_frame=None if info.ed is None else info.ed - 1,
        es_frame=None if info.es is None else info.es - 1,
        group=info.group,
        n_frames_acquired=info.n_frames,
    )
    if four_d:
        study = read_nifti(four_d[0], labels={f - 1: path for f, path in labels.items()} or None, metadata=meta)
        _check_frames_match_cine(study, images)
        if info.n_frames is not None and info.n_frames != study.n_frames:
            raise InputError(info_path, f"NbFrame {info.n_frames} differs from the {study.n_frames} frames of {four_d[0].name}")
    else:
        study = _read_frame_files(images, labels, meta)
    assert study.frame_numbers is not None
    for name, frame in (("ED", meta.ed_frame), ("ES", meta.es_frame)):
        if frame is not None and frame not in study.frame_numbers:
            available = ", ".join(str(f + 1) for f in study.frame_numbers)
            raise InputError(info_path, f"{name} is frame {frame + 1}, but the folder holds frames {available}")
    return study


def _check_frames_match_cine(study: CineStudy, images: dict[int, Path]) -> None:
    """Each ``frameFF`` image must be frame ``FF - 1`` of the 4D cine (same grid and intensities)."""
    for frame, path in sorted(images.items()):
        single = read_nifti(path)
        if frame - 1 >= study.n_frames:
            raise InputError(path, f"frame {frame} is beyond the {study.n_frames} frames of the 4D file")
        if not single.geometry.same_grid(study.geometry):
            raise InputError(path, "geometry differs from the 4D file")
        if not np.allclose(single.image[0], study.frame(frame - 1), rtol=1e-4, atol=1e-4):
            raise InputError(path, f"image differs from frame {frame} of the 4D file (frame numbering mismatch?)")


def _read_frame_files(images: dict[int, Path], labels: dict[int, Path], meta: StudyMetadata) -> CineStudy:
    """Stack per-frame 3D files (1-based frame numbers in ``images``) into one study."""
    frames = [read_nifti(images[f], labels=labels.get(f)) for f in sorted(images)]
    first = frames[0]
    for f, single in zip(sorted(images), frames, strict=True):
        if single.n_frames != 1:
            raise InputError(images[f], f"expected a 3D frame image, got {single.n_frames} frames")
        if not single.geometry.same_grid(first.geometry):
            raise InputError(images[f], f"geometry differs from {images[min(images)].name}")
    frame_numbers = tuple(f - 1 for f in sorted(images))
    labelled = [(n, single.labels.data[0]) for n, single in zip(frame_numbers, frames) if single.labels is not None]
    label_map = None
    if labelled:
        label_map = LabelMap(np.stack([v for _, v in labelled]), first.geometry, tuple(n for n, _ in labelled))
    return CineStudy(
        np.concatenate([single.image for single in frames]),
        first.geometry,
        meta,
        frame_numbers=frame_numbers,
        labels=label_map,
    )
