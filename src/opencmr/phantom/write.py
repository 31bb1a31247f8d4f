"""Write a phantom as an ACDC-style patient folder (NIfTI), optionally with a DICOM export.

Layout (frame numbers in file names and ``Info.cfg`` are 1-based, as in ACDC)::

    out_dir/
      Info.cfg                     ED, ES, Group, Height, NbFrame, Weight
      phantom_4d.nii.gz            the cine (x, y, slice, frame), raw integer values
      phantom_4d_gt.nii.gz         labels of every frame
      phantom_frameXX.nii.gz       ED and ES images
      phantom_frameXX_gt.nii.gz    ED and ES labels
      truth.json                   ground truth, configuration and anatomy
      dicom/                       (dicom=True) the cine in one of the DICOM layouts of
                                   :class:`DicomLayout`, plus a localiser and a
                                   long-axis cine as decoys

The folder reads back with :func:`opencmr.io.read_acdc_folder`.
"""

from __future__ import annotations

import json
import math
import os
import re
from enum import Enum
from pathlib import Path
from typing import Any

from opencmr.errors import OutputError
from opencmr.io._atomic import atomic_output
from opencmr.io.nifti import write_label_map, write_study_nifti
from opencmr.io.study import CineStudy
from opencmr.phantom.make import Phantom

__all__ = ["DicomLayout", "write_phantom"]

PREFIX = "phantom"
_SLICE_RR_VARIATION = 0.04
"""Relative amplitude of the per-breath-hold RR variation of the series-per-slice layout."""


class DicomLayout(str, Enum):
    """How the cine of ``dicom/`` is exported, as different scanners do."""

    SINGLE_SERIES = "single-series"
    """One classic MR series holding every slice and phase (``IM_0001.dcm`` ...)."""
    SERIES_PER_SLICE = "series-per-slice"
    """One classic MR series per slice position, each with its own RR interval (``S000_0000.dcm`` ...)."""
    ENHANCED = "enhanced"
    """One Enhanced MR multi-frame file (``ENH_0001.dcm``)."""


def _parse_layout(value: str | DicomLayout) -> DicomLayout:
    try:
        return DicomLayout(value)
    except ValueError:
        choices = ", ".join(repr(layout.value) for layout in DicomLayout)
        raise ValueError(f"dicom_layout must be one of {choices}, got {value!r}") from None


def _info_cfg(phantom: Phantom) -> str:
    meta = phantom.study.metadata
    assert meta.ed_frame is not None and meta.es_frame is not None and meta.group is not None
    return (
        f"ED: {meta.ed_frame + 1}\n"
        f"ES: {meta.es_frame + 1}\n"
        f"Group: {meta.group.value}\n"
        f"Height: {float(meta.height_cm or 0.0):.1f}\n"
        f"NbFrame: {phantom.study.n_frames}\n"
        f"Weight: {float(meta.weight_kg or 0.0):.1f}\n"
    )


def _write_text(path: Path, text: str, overwrite: bool) -> Path:
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _truth_document(phantom: Phantom) -> dict[str, object]:
    meta = phantom.study.metadata
    return {
        "patient_id": meta.patient_id,
        "group": meta.group.value if meta.group is not None else None,
        "seed": phantom.config.seed,
        "units": "volumes mL, mass g, thickness mm, times ms; frames 0-based",
        "truth": phantom.truth.to_dict(),
        "config": phantom.config.to_dict(),
        "anatomy": phantom.anatomy.to_dict(),
        "targets": {
            "lv_edv_ml": phantom.parameters.lv_edv_ml,
            "lv_ef": phantom.parameters.lv_ef,
            "rv_edv_ml": phantom.parameters.rv_edv_ml,
            "rv_ef": phantom.parameters.rv_ef,
        },
        "geometry": phantom.study.geometry.to_dict(),
    }


def _slice_rr_intervals(rr_ms: float, n_slices: int) -> list[float]:
    """Deterministic RR intervals that differ slightly between breath-holds: ``rr (1 + 0.04 sin s)``."""
    return [rr_ms * (1.0 + _SLICE_RR_VARIATION * math.sin(s)) for s in range(n_slices)]


def _write_dicom_cine(
    phantom: Phantom, folder: Path, layout: DicomLayout, uid: dict[str, str], options: dict[str, Any]
) -> None:
    """The cine of ``dicom/`` in ``layout``; ``options`` holds the patient, study and output keywords."""
    from opencmr.io.dicom_write import write_dicom_cine, write_dicom_cine_per_slice
    from opencmr.io.dicom_write_enhanced import write_dicom_enhanced_cine

    study, rr = phantom.study, phantom.config.rr_interval_ms
    if layout is DicomLayout.SERIES_PER_SLICE:
        rrs = _slice_rr_intervals(rr, study.n_slices)
        uids = [uid[f"series-{s}"] for s in range(study.n_slices)]
        write_dicom_cine_per_slice(
            study, folder, first_series_number=5, rr_intervals_ms=rrs, series_uids=uids, **options
        )
    elif layout is DicomLayout.ENHANCED:
        write_dicom_enhanced_cine(
            study, folder, series_number=5, series_uid=uid["series"], rr_interval_ms=rr, **options
        )
    else:
        write_dicom_cine(study, folder, series_number=5, series_uid=uid["series"], rr_interval_ms=rr, **options)


def _write_dicom(
    phantom: Phantom,
    folder: Path,
    overwrite: bool,
    layout: DicomLayout = DicomLayout.SINGLE_SERIES,
    transfer_syntax: str | None = None,
) -> Path:
    """The cine in ``layout`` (compressed with ``transfer_syntax``), a localiser and a 4CH cine in one study."""
    from pydicom.uid import generate_uid

    from opencmr.io.dicom_write import write_dicom_localizer, write_dicom_long_axis_cine

    meta = phantom.study.metadata
    patient_id = meta.patient_id or "PHANTOM"
    patient_name = meta.patient_name or "Phantom^Opencmr"
    # Deterministic UIDs: the same phantom always gives the same study, frame of reference and series.
    keys = ["study", "frame", "series", *(f"series-{s}" for s in range(phantom.study.n_slices))]
    uid = {k: generate_uid(entropy_srcs=["opencmr-phantom", patient_id, k]) for k in keys}
    common: dict[str, Any] = {
        "study_uid": uid["study"],
        "frame_of_reference_uid": uid["frame"],
        "patient_id": patient_id,
        "patient_name": patient_name,
        "overwrite": overwrite,
    }
    cine_options = {**common, "series_description": "cine SAX bSSFP", "transfer_syntax": transfer_syntax}
    _write_dicom_cine(phantom, folder, layout, uid, cine_options)
    write_dicom_localizer(phantom.study, folder, series_number=1, **common)
    write_dicom_long_axis_cine(
        phantom.study, folder, series_number=3, rr_interval_ms=phantom.config.rr_interval_ms, **common
    )
    return folder


_OWN_FILES = (
    re.compile(r"^Info\.cfg$"),
    re.compile(r"^truth\.json$"),
    re.compile(rf"^{PREFIX}_(4d|frame\d+)(_gt)?\.nii\.gz$"),
    re.compile(r"^dicom/(IM|LOC|LAX|ENH)_\d{4}\.dcm$"),  # single-series and enhanced cines, decoys
    re.compile(r"^dicom/S\d{3}_\d{4}\.dcm$"),  # series-per-slice cine
)


def _remove_previous_phantom(root: Path) -> None:
    """Delete the files an earlier :func:`write_phantom` left in ``root``, and nothing else.

    Stale files of an earlier phantom (other ED/ES frame files, more DICOM
    images) would otherwise mix with the new ones. A folder holding anything
    the phantom does not write is refused, so that no user file is deleted.

    Raises
    ------
    OutputError
        ``root`` holds files or folders that the phantom writer did not write.
    """
    entries = sorted(root.rglob("*"))
    files = [p for p in entries if p.is_file() or p.is_symlink()]
    foreign = [p for p in files if not any(rule.match(p.relative_to(root).as_posix()) for rule in _OWN_FILES)]
    foreign += [p for p in entries if p.is_dir() and p != root / "dicom"]
    if foreign:
        raise OutputError(
            root,
            f"holds files that 'opencmr phantom' did not write (e.g. {foreign[0].relative_to(root)}); "
            "--overwrite only replaces an earlier phantom: choose an empty or new folder",
        )
    for path in files:
        path.unlink()


def write_phantom(
    phantom: Phantom,
    out_dir: str | os.PathLike[str],
    *,
    dicom: bool = False,
    overwrite: bool = False,
    dicom_layout: str = "single-series",
    dicom_transfer_syntax: str | None = None,
) -> dict[str, Path]:
    """Write ``phantom`` as an ACDC-style patient folder.

    Parameters
    ----------
    phantom : Phantom
        From :func:`~opencmr.phantom.make_phantom`.
    out_dir : str or PathLike
        Output folder (created if needed).
    dicom : bool
        Also write ``dicom/``: the cine in ``dicom_layout`` with a localiser
        and a long-axis cine in the same study (deterministic study, frame of
        reference and series UIDs).
    overwrite : bool
        Replace an earlier phantom in ``out_dir`` (its files are removed
        first); a folder holding any other file is refused.
    dicom_layout : {"single-series", "series-per-slice", "enhanced"}
        The cine as one classic MR series (``IM_0001.dcm`` ...), as one
        series per slice position (``S000_0000.dcm`` ..., series 5, 6, ...,
        RR intervals ``rr (1 + 0.04 sin s)`` as in separate breath-holds), or
        as one Enhanced MR multi-frame file (``ENH_0001.dcm``); see
        :class:`DicomLayout`.
    dicom_transfer_syntax : str, optional
        Transfer syntax UID of the cine: None for Explicit VR Little Endian,
        else one of :data:`opencmr.io.dicom_write.COMPRESSIONS` (lossless RLE,
        JPEG-LS, JPEG 2000). The decoys are never compressed.

    Returns
    -------
    dict of str to pathlib.Path
        ``info``, ``image_4d``, ``labels_4d``, ``ed_image``, ``ed_labels``,
        ``es_image``, ``es_labels``, ``truth`` and, with ``dicom``, ``dicom``.

    Raises
    ------
    ValueError
        An unknown ``dicom_layout``, or a ``dicom_transfer_syntax`` that cannot
        be written (checked before anything is written).
    OutputError
        ``out_dir`` is a file, or holds files and ``overwrite`` is False, or
        holds files the phantom did not write.
    """
    layout = _parse_layout(dicom_layout)
    if dicom:
        from opencmr.io.dicom_write import _check_transfer_syntax

        _check_transfer_syntax(dicom_transfer_syntax)
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise OutputError(root, "is a file, not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise OutputError(root, "already contains files (use --overwrite to write into it)")
        _remove_previous_phantom(root)
    root.mkdir(parents=True, exist_ok=True)

    study = phantom.study
    assert study.labels is not None and study.frame_times_ms is not None
    ed, es = study.metadata.ed_frame, study.metadata.es_frame
    assert ed is not None and es is not None
    files: dict[str, Path] = {
        "info": _write_text(root / "Info.cfg", _info_cfg(phantom), overwrite),
        "image_4d": write_study_nifti(study, root / f"{PREFIX}_4d.nii.gz", overwrite=overwrite),
        "labels_4d": write_label_map(study.labels, root / f"{PREFIX}_4d_gt.nii.gz", overwrite=overwrite),
    }
    for name, frame in (("ed", ed), ("es", es)):
        single = CineStudy(
            study.image[frame : frame + 1],
            study.geometry,
            study.metadata,
            frame_numbers=(frame,),
            frame_times_ms=(study.frame_times_ms[frame],),
        )
        stem = f"{PREFIX}_frame{frame + 1:02d}"
        files[f"{name}_image"] = write_study_nifti(single, root / f"{stem}.nii.gz", overwrite=overwrite)
        files[f"{name}_labels"] = write_label_map(
            study.labels, root / f"{stem}_gt.nii.gz", frame=frame, overwrite=overwrite
        )
    files["truth"] = _write_text(
        root / "truth.json", json.dumps(_truth_document(phantom), indent=2) + "\n", overwrite
    )
    if dicom:
        files["dicom"] = _write_dicom(phantom, root / "dicom", overwrite, layout, dicom_transfer_syntax)
    return files
