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
from opencmr.io.nifti import load_nifti_array, read_label_file, read_nifti
from opencmr.io.study import CineStudy, Geometry, LabelMap, StudyMetadata
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
        n_acquired = study.n_frames
    else:
        study = _read_frame_files(images, labels, meta)
        n_acquired = info.n_frames or max(images)
    for name, frame in (("ED", meta.ed_frame), ("ES", meta.es_frame)):
        if frame is not None and frame >= n_acquired:
            raise InputError(info_path, f"{name} frame {frame + 1} is beyond the {n_acquired} frames of the cine")
    if info.n_frames is not None and four_d and info.n_frames != study.n_frames:
        raise InputError(info_path, f"NbFrame {info.n_frames} differs from the {study.n_frames} frames of {four_d[0].name}")
    return study


def _read_frame_files(images: dict[int, Path], labels: dict[int, Path], meta: StudyMetadata) -> CineStudy:
    """Stack per-frame 3D files (1-based frame numbers in ``images``) into one study."""
    volumes = []
    geometry: Geometry | None = None
    first: Path | None = None
    for frame in sorted(images):
        data, affine, _ = load_nifti_array(images[frame])
        if data.shape[3] != 1:
            raise InputError(images[frame], f"expected a 3D frame image, got {data.shape[3]} frames")
        volume = np.transpose(data[..., 0], (2, 1, 0)).astype(np.float32, copy=False)
        this = Geometry(affine, volume.shape)
        if geometry is None:
            geometry, first = this, images[frame]
        elif not geometry.same_grid(this):
            raise InputError(images[frame], f"geometry differs from {first.name if first else 'the first frame'}")
        volumes.append(volume)
    assert geometry is not None
    label_map = None
    if labels:
        frames = sorted(labels)
        volumes_gt = [read_label_file(labels[f], geometry, (f - 1,)).data[0] for f in frames]
        label_map = LabelMap(np.stack(volumes_gt), geometry, tuple(f - 1 for f in frames))
    return CineStudy(
        np.stack(volumes),
        geometry,
        meta,
        frame_numbers=tuple(f - 1 for f in sorted(images)),
        labels=label_map,
    )
