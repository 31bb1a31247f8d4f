"""Write a phantom as an ACDC-style patient folder (NIfTI), optionally with a DICOM export.

Layout (frame numbers in file names and ``Info.cfg`` are 1-based, as in ACDC)::

    out_dir/
      Info.cfg                     ED, ES, Group, Height, NbFrame, Weight
      phantom_4d.nii.gz            the cine (x, y, slice, frame), raw integer values
      phantom_4d_gt.nii.gz         labels of every frame
      phantom_frameXX.nii.gz       ED and ES images
      phantom_frameXX_gt.nii.gz    ED and ES labels
      truth.json                   ground truth, configuration and anatomy
      dicom/                       (dicom=True) the cine as a DICOM series, plus a
                                   localiser and a long-axis cine as decoys

The folder reads back with :func:`opencmr.io.read_acdc_folder`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from opencmr.errors import OutputError
from opencmr.io._atomic import atomic_output
from opencmr.io.nifti import write_label_map, write_study_nifti
from opencmr.io.study import CineStudy
from opencmr.phantom.make import Phantom

__all__ = ["write_phantom"]

PREFIX = "phantom"


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


def _write_dicom(phantom: Phantom, folder: Path, overwrite: bool) -> Path:
    from pydicom.uid import generate_uid

    from opencmr.io.dicom_write import write_dicom_cine, write_dicom_localizer, write_dicom_long_axis_cine

    meta = phantom.study.metadata
    patient_id = meta.patient_id or "PHANTOM"
    patient_name = meta.patient_name or "Phantom^Opencmr"
    # Deterministic UIDs: the same phantom always gives the same files.
    uid = {k: generate_uid(entropy_srcs=["opencmr-phantom", patient_id, k]) for k in ("study", "frame", "series")}
    rr = phantom.config.rr_interval_ms
    write_dicom_cine(
        phantom.study,
        folder,
        series_number=5,
        series_description="cine SAX bSSFP",
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=uid["study"],
        frame_of_reference_uid=uid["frame"],
        series_uid=uid["series"],
        rr_interval_ms=rr,
        overwrite=overwrite,
    )
    common = {
        "study_uid": uid["study"],
        "frame_of_reference_uid": uid["frame"],
        "patient_id": patient_id,
        "patient_name": patient_name,
        "overwrite": overwrite,
    }
    write_dicom_localizer(phantom.study, folder, series_number=1, **common)  # type: ignore[arg-type]
    write_dicom_long_axis_cine(
        phantom.study, folder, series_number=3, rr_interval_ms=rr, **common  # type: ignore[arg-type]
    )
    return folder


_OWN_FILES = (
    re.compile(r"^Info\.cfg$"),
    re.compile(r"^truth\.json$"),
    re.compile(rf"^{PREFIX}_(4d|frame\d+)(_gt)?\.nii\.gz$"),
    re.compile(r"^dicom/(IM|LOC|LAX)_\d{4}\.dcm$"),
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
) -> dict[str, Path]:
    """Write ``phantom`` as an ACDC-style patient folder.

    Parameters
    ----------
    phantom : Phantom
        From :func:`~opencmr.phantom.make_phantom`.
    out_dir : str or PathLike
        Output folder (created if needed).
    dicom : bool
        Also write ``dicom/``: the cine as a classic DICOM MR series
        (``IM_0001.dcm`` ...) with a localiser and a long-axis cine in the
        same study (deterministic UIDs).
    overwrite : bool
        Replace an earlier phantom in ``out_dir`` (its files are removed
        first); a folder holding any other file is refused.

    Returns
    -------
    dict of str to pathlib.Path
        ``info``, ``image_4d``, ``labels_4d``, ``ed_image``, ``ed_labels``,
        ``es_image``, ``es_labels``, ``truth`` and, with ``dicom``, ``dicom``.

    Raises
    ------
    OutputError
        ``out_dir`` is a file, or holds files and ``overwrite`` is False, or
        holds files the phantom did not write.
    """
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
        files["dicom"] = _write_dicom(phantom, root / "dicom", overwrite)
    return files
