"""One entry point that reads any study opencmr accepts."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from opencmr.errors import InputError
from opencmr.io.acdc import is_acdc_folder, read_acdc_folder
from opencmr.io.nifti import is_nifti_path, read_nifti
from opencmr.io.study import CineStudy

if TYPE_CHECKING:
    from opencmr.io.dicom import ProgressCallback

__all__ = ["read_ed_es_pair", "read_study"]


def read_study(
    path: str | os.PathLike[str],
    *,
    labels: str | os.PathLike[str] | Mapping[int, str | os.PathLike[str]] | None = None,
    series: str | None = None,
    progress: ProgressCallback | None = None,
    study: str | None = None,
) -> CineStudy:
    """Read a study from a NIfTI file, an ACDC patient folder, or DICOM (a folder, a zip archive, a multi-frame file).

    Parameters
    ----------
    path : str or PathLike
        ``.nii``/``.nii.gz`` file (3D or 4D), ACDC patient folder (has
        ``Info.cfg`` or ``*_frameFF.nii.gz``), or a folder of DICOM files.
    labels : str, PathLike or mapping of frame number to path, optional
        Label file for a NIfTI image (same frames as the image), or one 3D
        label file per labelled frame (see :func:`~opencmr.io.nifti.read_nifti`).
    series : str, optional
        SeriesInstanceUID or SeriesNumber (``FIRST-LAST`` for a stack stored
        one series per slice) choosing the DICOM series to read
        (:func:`~opencmr.io.dicom.read_dicom`).
    study : str, optional
        StudyInstanceUID or PatientID when DICOM input holds several studies.
    progress : callable, optional
        ``progress(stage, done, total)`` while the files of a DICOM folder are read.

    Raises
    ------
    InputError
        If the path does not exist, its kind is not recognised, or the reader
        for its kind rejects it.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "does not exist")
    if p.is_file():
        if is_nifti_path(p):
            if series is not None or study is not None:
                raise InputError(p, "--series and --study apply to DICOM input only")
            return read_nifti(p, labels=labels)
        from opencmr.io.dicom.sources import is_zip_archive

        if not (_looks_like_dicom(p) or is_zip_archive(p)):
            raise InputError(
                p, "unrecognised file type (expected .nii, .nii.gz, an ACDC patient folder, a DICOM folder or zip, "
                "or a multi-frame DICOM file)"
            )
        if labels is not None:
            raise InputError(p, "--labels applies to NIfTI files only")
        from opencmr.io.dicom import read_dicom

        return read_dicom(p, series=series, progress=progress, study=study)
    if labels is not None:
        raise InputError(p, "--labels applies to NIfTI files only (ACDC folders carry their _gt files)")
    if is_acdc_folder(p):
        if series is not None or study is not None:
            raise InputError(p, "--series and --study apply to DICOM input only")
        return read_acdc_folder(p)
    from opencmr.io.dicom import read_dicom

    return read_dicom(p, series=series, progress=progress, study=study)


def _looks_like_dicom(path: Path) -> bool:
    """DICOM Part 10 files carry ``DICM`` at byte 128."""
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_ed_es_pair(ed: str | os.PathLike[str], es: str | os.PathLike[str]) -> CineStudy:
    """Read a study given as two 3D NIfTI files, end-diastole then end-systole.

    The result has two frames, 0 (ED) and 1 (ES), with ``ed_frame = 0`` and
    ``es_frame = 1`` recorded, so that measurement takes the phases as given.

    Raises
    ------
    InputError
        Naming the file: not a 3D NIfTI image, or the ES image on another grid
        (shape, spacing or orientation) than the ED image.
    """
    paths = [Path(ed), Path(es)]
    studies = []
    for path, phase in zip(paths, ("ED", "ES")):
        if not path.is_file() or not is_nifti_path(path):
            raise InputError(path, f"the {phase} image of an ED/ES pair must be a 3D NIfTI file (.nii or .nii.gz)")
        study = read_nifti(path)
        if study.n_frames != 1:
            raise InputError(path, f"the {phase} image of an ED/ES pair must be 3D, but it has {study.n_frames} frames")
        studies.append(study)
    if not studies[1].geometry.same_grid(studies[0].geometry):
        raise InputError(
            paths[1], f"is not on the grid of the ED image {paths[0].name} (shape, spacing or orientation differ)"
        )
    image = np.concatenate([studies[0].image, studies[1].image])
    meta = dataclasses.replace(studies[0].metadata, ed_frame=0, es_frame=1)
    return CineStudy(image, studies[0].geometry, meta, frame_numbers=(0, 1))
