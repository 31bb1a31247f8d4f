"""NIfTI studies and label maps in and out.

A NIfTI array ``(x, y, z[, t])`` becomes the study layout ``(frame, slice,
row, col)`` by transposition (``array[f, s, r, c] == nifti[c, r, s, f]``), and
the NIfTI affine is kept unchanged as :attr:`Geometry.affine`, so a label map
written back has exactly the input's shape and affine.

References
----------
R. W. Cox et al., "A (sort of) new image data format standard: NIfTI-1",
NeuroImage 22 (2004). https://nifti.nimh.nih.gov/nifti-1
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener

from opencmr.errors import InputError, describe_exception
from opencmr.io._atomic import atomic_output
from opencmr.io.study import CineStudy, Geometry, LabelMap, StudyMetadata
from opencmr.labels import LABEL_VALUES

__all__ = [
    "frame_file_names",
    "is_nifti_path",
    "load_nifti_array",
    "read_label_file",
    "read_label_map",
    "read_nifti",
    "write_label_map",
    "write_segmentation",
    "write_study_nifti",
]

PathLike = str | os.PathLike[str]


def is_nifti_path(path: PathLike) -> bool:
    """Whether the file name has a NIfTI extension (``.nii`` or ``.nii.gz``)."""
    name = Path(path).name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _nifti_time_step_ms(header: nib.Nifti1Header) -> float | None:
    """Frame interval from pixdim[4] converted to ms, or ``None`` when not recorded."""
    step = float(header["pixdim"][4])
    if not np.isfinite(step) or step <= 0:
        return None
    unit = header.get_xyzt_units()[1]
    factor = {"sec": 1000.0, "msec": 1.0, "usec": 0.001}.get(unit)
    return None if factor is None else step * factor


def load_nifti_array(path: PathLike) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Header]:
    """Load a NIfTI file as ``(array (x, y, z, t), affine, header)`` with thorough checks.

    The array is always 4D (a 3D volume gets a singleton time axis).

    Raises
    ------
    InputError
        Missing or unreadable file, truncated data, fewer than 3 or more than 4
        dimensions, zero/missing/non-finite voxel spacing, NaN or infinite
        values.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file does not exist")
    if p.is_dir():
        raise InputError(p, "is a folder, expected a NIfTI file (.nii or .nii.gz)")
    logger = nib.imageglobals.logger
    level = logger.level
    logger.setLevel(logging.ERROR)  # nibabel logs (and silently fixes) header problems we report ourselves
    try:
        img = nib.load(str(p))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise InputError(p, f"not a NIfTI image (read as {type(img).__name__})")
        with ImageOpener(str(p)) as handle:
            raw_header = type(img.header).from_fileobj(handle, check=False)
    except InputError:
        raise
    except Exception as exc:  # nibabel raises many types for corrupt headers
        raise InputError(p, f"not a readable NIfTI file ({describe_exception(exc)})") from exc
    finally:
        logger.setLevel(level)
    raw_pixdim = np.asarray(raw_header["pixdim"][1:4], dtype=float)
    if int(raw_header["sform_code"]) == 0 and (not np.all(np.isfinite(raw_pixdim)) or np.any(raw_pixdim <= 0)):
        # without an sform, nibabel would replace a zero pixdim by 1 mm: silently wrong volumes
        raise InputError(p, f"voxel spacing is missing or invalid (pixdim {raw_pixdim.tolist()})")
    shape = img.shape
    if len(shape) > 4:
        extra = shape[4:]
        if all(n == 1 for n in extra):
            shape = shape[:4]
        else:
            raise InputError(p, f"{len(shape)}D image of shape {shape}; expected 3D (x, y, slice) or 4D (x, y, slice, frame)")
    if len(shape) < 3:
        raise InputError(p, f"{len(shape)}D image of shape {shape}; expected 3D (x, y, slice) or 4D (x, y, slice, frame)")
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        raise InputError(p, f"voxel spacing is missing or invalid (pixdim {zooms.tolist()})")
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) <= 1e-12:
        raise InputError(p, "affine is singular or not finite (zero or missing voxel spacing)")
    try:
        data = np.asarray(img.dataobj)
    except Exception as exc:  # truncated gzip, short file, ...
        raise InputError(p, f"image data cannot be read, the file may be truncated or corrupt ({describe_exception(exc)})") from exc
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise InputError(p, f"unsupported data type {data.dtype} (expected real-valued intensities or labels)")
    data = data.reshape(shape)
    if data.ndim == 3:
        data = data[..., np.newaxis]
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(p, f"image contains {n_bad} NaN or infinite values")
    return data, affine, img.header


def _to_study_layout(data: np.ndarray) -> np.ndarray:
    """``(x, y, z, t)`` to ``(frame, slice, row, col)``."""
    return np.ascontiguousarray(np.transpose(data, (3, 2, 1, 0)))


def read_label_file(path: PathLike, geometry: Geometry, frame_numbers: tuple[int, ...]) -> LabelMap:
    """Read a label file that must lie on ``geometry`` and hold ``frame_numbers``.

    Raises
    ------
    InputError
        Geometry mismatch, wrong number of frames, or values that are not
        integral labels of the ACDC convention (0, 1, 2, 3).
    """
    p = Path(path)
    data, affine, _ = load_nifti_array(p)
    return _label_map(p, _to_study_layout(data), affine, geometry, frame_numbers)


def read_label_map(path: PathLike, frame_numbers: Sequence[int] | None = None) -> LabelMap:
    """Read a label file on its own grid: a segmentation without its image (``opencmr measure``).

    Parameters
    ----------
    path : str or PathLike
        3D (one frame) or 4D ``(x, y, slice, frame)`` NIfTI of ACDC labels.
    frame_numbers : sequence of int, optional
        Acquisition frame (0-based) of each volume; by default ``0, 1, ...``.

    Raises
    ------
    InputError
        Unreadable file, missing or invalid spacing, non-integral values or
        values outside 0-3, or a frame count that does not match ``frame_numbers``.
    """
    p = Path(path)
    data, affine, header = load_nifti_array(p)
    labels = _to_study_layout(data)
    thickness = float(header.get_zooms()[2])
    geometry = Geometry(affine, labels.shape[1:], slice_thickness_mm=thickness if thickness > 0 else None)
    frames = tuple(range(labels.shape[0])) if frame_numbers is None else tuple(int(f) for f in frame_numbers)
    return _label_map(p, labels, affine, geometry, frames)


def _label_map(p: Path, labels: np.ndarray, affine: np.ndarray, geometry: Geometry, frame_numbers: tuple[int, ...]) -> LabelMap:
    if labels.shape[1:] != geometry.shape:
        raise InputError(
            p,
            f"label geometry does not match its image: shape (slices, rows, cols) {labels.shape[1:]} "
            f"vs image {geometry.shape}",
        )
    if not np.allclose(affine, geometry.affine, atol=1e-3):
        raise InputError(p, "label geometry does not match its image: affines differ")
    if labels.shape[0] != len(frame_numbers):
        raise InputError(p, f"label file has {labels.shape[0]} frames, expected {len(frame_numbers)}")
    if not np.issubdtype(labels.dtype, np.integer):
        rounded = np.rint(labels)
        if not np.array_equal(rounded, labels):
            raise InputError(p, "label values are not integers (is this an image rather than a label map?)")
        labels = rounded
    values = set(np.unique(labels).astype(int).tolist())
    if not values <= LABEL_VALUES:
        raise InputError(
            p,
            f"label values {sorted(values - LABEL_VALUES)} are outside the convention "
            "0 background, 1 RV blood pool, 2 LV myocardium, 3 LV blood pool",
        )
    return LabelMap(labels.astype(np.uint8), geometry, frame_numbers)


def read_nifti(
    path: PathLike,
    labels: PathLike | Mapping[int, PathLike] | None = None,
    metadata: StudyMetadata | None = None,
) -> CineStudy:
    """Read a 3D (one frame) or 4D (cine) NIfTI file, with optional labels.

    Parameters
    ----------
    path : str or PathLike
        The image, ``(x, y, slice)`` or ``(x, y, slice, frame)``.
    labels : path or mapping of frame number to path, optional
        A single label file with as many frames as the image (a 3D label file
        for a 3D image), or ``{frame_number: 3D label file}`` for some frames
        of a cine.
    metadata : StudyMetadata, optional
        Extra metadata; ``source`` and ``source_format`` are filled in.

    Returns
    -------
    CineStudy

    Raises
    ------
    InputError
        Naming the file and the problem for any unusable input.

    Examples
    --------
    >>> study = read_nifti("patient001_frame01.nii.gz",
    ...                    labels="patient001_frame01_gt.nii.gz")  # doctest: +SKIP
    >>> study.image.shape  # (frames, slices, rows, cols)  # doctest: +SKIP
    (1, 10, 256, 216)
    """
    p = Path(path)
    data, affine, header = load_nifti_array(p)
    image = _to_study_layout(data).astype(np.float32, copy=False)
    geometry = Geometry(affine, image.shape[1:])
    n_frames = image.shape[0]
    frame_times = None
    step = _nifti_time_step_ms(header) if n_frames > 1 else None
    if step is not None:
        frame_times = tuple(i * step for i in range(n_frames))
    label_map = None
    if isinstance(labels, Mapping):
        frames = sorted(int(f) for f in labels)
        bad = [f for f in frames if not 0 <= f < n_frames]
        if bad:
            raise InputError(p, f"labels given for frames {bad}, but the image has frames 0..{n_frames - 1}")
        volumes = [read_label_file(labels[f], geometry, (f,)).data[0] for f in frames]
        label_map = LabelMap(np.stack(volumes), geometry, tuple(frames))
    elif labels is not None:
        label_map = read_label_file(labels, geometry, tuple(range(n_frames)))
    base = metadata or StudyMetadata()
    meta = dataclasses.replace(base, source=p, source_format=base.source_format or "nifti")
    return CineStudy(image, geometry, meta, frame_times_ms=frame_times, labels=label_map)


def _to_nifti_layout(volumes: np.ndarray, dtype: type) -> np.ndarray:
    """``(frame, slice, row, col)`` to ``(x, y, z, t)``, or ``(x, y, z)`` for one frame."""
    xyzt = np.ascontiguousarray(np.transpose(volumes, (3, 2, 1, 0)).astype(dtype, copy=False))
    return xyzt[..., 0] if xyzt.shape[3] == 1 else xyzt


def _nifti_image(data_xyzt: np.ndarray, affine: np.ndarray, time_step_ms: float | None = None) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data_xyzt, np.asarray(affine))
    img.set_qform(np.asarray(affine), code=1)
    img.set_sform(np.asarray(affine), code=1)
    if time_step_ms is not None and data_xyzt.ndim == 4:
        zooms = list(img.header.get_zooms())
        zooms[3] = time_step_ms
        img.header.set_zooms(zooms)
        img.header.set_xyzt_units(xyz="mm", t="msec")
    else:
        img.header.set_xyzt_units(xyz="mm")
    return img


def write_label_map(
    labels: LabelMap,
    path: PathLike,
    *,
    frame: int | None = None,
    as_4d: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a label map as NIfTI (uint8) in exactly its grid's shape and affine.

    Parameters
    ----------
    labels : LabelMap
    path : str or PathLike
        Output ``.nii`` or ``.nii.gz`` file.
    frame : int, optional
        Acquisition frame number to write as a 3D file. By default a single
        labelled frame is written as 3D and several as 4D ``(x, y, z, t)``.
    as_4d : bool
        Write a single frame as 4D ``(x, y, z, 1)`` (to match a 4D input with one frame).
    overwrite : bool
        Replace an existing file (otherwise :class:`~opencmr.errors.OutputError`).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if not isinstance(labels, LabelMap):
        raise TypeError(f"expected a LabelMap, got {type(labels).__name__}")
    volume = labels.data if frame is None else labels.frame(frame)[np.newaxis]
    data = _to_nifti_layout(volume, np.uint8)
    if as_4d and data.ndim == 3:
        data = data[..., np.newaxis]
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        nib.save(_nifti_image(data, labels.geometry.affine), str(tmp))
    return target


def frame_file_names(output: PathLike, frames: Sequence[int]) -> dict[int, Path]:
    """Per-frame file names ``STEM_frameFF.nii.gz`` (FF 1-based, as ACDC names them) when ``frames`` are not consecutive.

    Empty when one 4D file can hold the frames (consecutive frame numbers).
    """
    output = Path(output)
    frames = tuple(frames)
    if frames == tuple(range(frames[0], frames[0] + len(frames))):
        return {}
    suffix = ".nii.gz" if output.name.endswith(".nii.gz") else ".nii"
    stem = output.name[: -len(suffix)]
    return {f: output.with_name(f"{stem}_frame{f + 1:02d}{suffix}") for f in frames}


def write_segmentation(labels: LabelMap, output: PathLike, *, as_4d: bool = False, overwrite: bool = False) -> list[Path]:
    """Write a segmentation as one NIfTI file, or one file per frame when its frames are not consecutive.

    An ACDC folder segmented at ED and ES gives ``OUTPUT_frameFF.nii.gz`` per
    frame (:func:`frame_file_names`); a cine gives one 4D file (3D for one
    frame, unless ``as_4d``).
    """
    per_frame = frame_file_names(output, labels.frame_numbers)
    if per_frame:
        return [write_label_map(labels, path, frame=frame, overwrite=overwrite) for frame, path in per_frame.items()]
    return [write_label_map(labels, output, as_4d=as_4d, overwrite=overwrite)]


def write_study_nifti(study: CineStudy, path: PathLike, *, overwrite: bool = False) -> Path:
    """Write a study's image as a 4D NIfTI ``(x, y, slice, frame)`` (3D when it has one frame).

    The frame interval (mean difference of :attr:`CineStudy.frame_times_ms`)
    is stored in ``pixdim[4]`` in ms. Integral intensities are written as
    int16/uint16 when they fit, others as float32.
    """
    image = study.image
    if np.array_equal(image, np.rint(image)) and image.size:
        lo, hi = float(image.min()), float(image.max())
        dtype = np.int16 if lo >= -32768 and hi <= 32767 else np.uint16 if lo >= 0 and hi <= 65535 else np.float32
    else:
        dtype = np.float32
    data = _to_nifti_layout(image, dtype)
    step = None
    if study.frame_times_ms is not None and len(study.frame_times_ms) > 1:
        step = float(np.mean(np.diff(study.frame_times_ms)))
        step = step if step > 0 else None
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        nib.save(_nifti_image(data, study.geometry.affine, step), str(tmp))
    return target
