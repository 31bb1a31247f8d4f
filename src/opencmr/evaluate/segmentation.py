"""Segmentation evaluation per structure, as in the ACDC challenge.

Each labelled volume (one cardiac phase) is compared with its ground truth
structure by structure (LV blood pool, LV myocardium, RV blood pool; labels of
:mod:`opencmr.labels`) with the metrics of :mod:`opencmr.evaluate.metrics`,
computed in 3D in millimetres with the voxel spacing of the files, and
results are reported per structure and phase (ED, ES) as mean ± SD over
cases (Bernard et al. 2018).

Label files of other conventions are converted to ACDC values with a
:class:`LabelMapping`, given per side (ground truth and/or prediction), e.g.
the M&Ms challenge (1 LV, 2 MYO, 3 RV; Campello et al. 2021) is
``LabelMapping.parse("mnms")`` or ``"1=3,2=2,3=1"``.

References
----------
O. Bernard et al., "Deep learning techniques for automatic MRI cardiac
multi-structures segmentation and diagnosis: is the problem solved?", IEEE TMI
37(11), 2018, doi:10.1109/TMI.2018.2837502.
V. M. Campello et al., "Multi-Centre, Multi-Vendor and Multi-Disease Cardiac
Segmentation: The M&Ms Challenge", IEEE TMI 40(12), 2021,
doi:10.1109/TMI.2021.3090082.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from opencmr.errors import InputError
from opencmr.evaluate.metrics import MaskStatus, dice, distance_metrics, mask_status
from opencmr.io._atomic import atomic_output
from opencmr.io.acdc import parse_info_cfg
from opencmr.io.nifti import is_nifti_path, load_nifti_array
from opencmr.io.study import Geometry
from opencmr.labels import LABEL_VALUES, Label

__all__ = [
    "CSV_COLUMNS",
    "LABEL_MAPPING_PRESETS",
    "STRUCTURES",
    "EvaluationRow",
    "LabelMapping",
    "MeanSD",
    "StructureMetrics",
    "StructureSummary",
    "evaluate_files",
    "evaluate_folders",
    "evaluate_volume",
    "format_summary",
    "summarize",
    "write_csv",
]

PathLike = str | os.PathLike[str]

#: Evaluated structures (ACDC label value -> name), in the order of result tables.
STRUCTURES: Mapping[Label, str] = MappingProxyType(
    {label: label.abbreviation for label in (Label.LV_BLOOD_POOL, Label.LV_MYOCARDIUM, Label.RV_BLOOD_POOL)}
)

#: Columns of the per-case CSV written by :func:`write_csv`.
CSV_COLUMNS: tuple[str, ...] = (
    "case", "phase", "structure", "dice", "hd_mm", "hd95_mm", "assd_mm", "gt_ml", "pred_ml", "status",
)

_ITEM_RE = re.compile(r"^\s*(\d+)\s*=\s*(\d+)\s*$")
_FRAME_RE = re.compile(r"_frame(\d+)(_gt)?$")


def _strip_nifti(name: str) -> str:
    """File name without ``.nii`` / ``.nii.gz``."""
    return re.sub(r"\.nii(\.gz)?$", "", name, flags=re.IGNORECASE)


# ----------------------------------------------------------------------------- label mapping


@dataclass(frozen=True)
class LabelMapping:
    """Conversion of another label convention to ACDC values (see :mod:`opencmr.labels`).

    Values not listed keep their value (background 0 stays 0); a value mapped
    to 0 is dropped. After mapping, every value must be an ACDC label.

    Parameters
    ----------
    pairs : mapping or sequence of (int, int)
        ``{their_value: acdc_value}``; stored as sorted pairs.

    Examples
    --------
    >>> LabelMapping({1: 3, 2: 2, 3: 1}) == LabelMapping.parse("mnms")
    True
    >>> str(LabelMapping.parse("3 = 1, 1 = 3"))
    '1=3,3=1'
    """

    pairs: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        items = self.pairs.items() if isinstance(self.pairs, Mapping) else self.pairs
        pairs = tuple(sorted((int(src), int(dst)) for src, dst in items))
        sources = [src for src, _ in pairs]
        if len(set(sources)) != len(sources):
            raise ValueError(f"a label value is mapped twice: {pairs}")
        if any(src < 0 for src in sources):
            raise ValueError(f"label values must not be negative: {pairs}")
        bad = sorted({dst for _, dst in pairs} - LABEL_VALUES)
        if bad:
            raise ValueError(f"target values {bad} are not ACDC labels {sorted(LABEL_VALUES)}")
        object.__setattr__(self, "pairs", pairs)

    def __str__(self) -> str:
        return ",".join(f"{src}={dst}" for src, dst in self.pairs)

    @classmethod
    def parse(cls, text: str) -> LabelMapping:
        """A preset name (:data:`LABEL_MAPPING_PRESETS`) or ``"their=acdc,..."`` such as ``"1=3,2=2,3=1"``.

        Raises
        ------
        ValueError
            Unknown preset or malformed text.
        """
        key = text.strip().lower()
        if key in LABEL_MAPPING_PRESETS:
            return LABEL_MAPPING_PRESETS[key]
        items = [item for item in key.split(",") if item.strip()]
        matches = [_ITEM_RE.match(item) for item in items]
        if not items or not all(matches):
            presets = ", ".join(LABEL_MAPPING_PRESETS)
            raise ValueError(f"label mapping {text!r} is neither a preset ({presets}) nor 'value=acdc_value,...'")
        return cls(tuple((int(m[1]), int(m[2])) for m in matches if m))

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """Map an integer label array (values not listed are kept)."""
        labels = np.asarray(labels)
        out = labels.copy()
        for src, dst in self.pairs:
            out[labels == src] = dst
        return out


#: Named mappings: ``acdc`` (identity) and ``mnms`` (M&Ms: 1 LV, 2 MYO, 3 RV).
LABEL_MAPPING_PRESETS: Mapping[str, LabelMapping] = MappingProxyType(
    {
        "acdc": LabelMapping(((1, 1), (2, 2), (3, 3))),
        "mnms": LabelMapping(((1, 3), (2, 2), (3, 1))),
    }
)


def _as_mapping(value: LabelMapping | Mapping[int, int] | str | None) -> LabelMapping | None:
    if value is None or isinstance(value, LabelMapping):
        return value
    if isinstance(value, str):
        return LabelMapping.parse(value)
    return LabelMapping(tuple(value.items()))


# ----------------------------------------------------------------------------- one volume


@dataclass(frozen=True)
class StructureMetrics:
    """Metrics of one structure in one volume (distances in mm, volumes in ml).

    ``status`` says which empty-mask convention applied (see
    :mod:`opencmr.evaluate.metrics`): distances are NaN when exactly one
    mask is empty.
    """

    dice: float
    hd_mm: float
    hd95_mm: float
    assd_mm: float
    pred_ml: float
    gt_ml: float
    status: MaskStatus

    @property
    def pred_empty(self) -> bool:
        """Whether the prediction has no voxel of this structure."""
        return self.status in (MaskStatus.PRED_EMPTY, MaskStatus.BOTH_EMPTY)

    @property
    def gt_empty(self) -> bool:
        """Whether the ground truth has no voxel of this structure."""
        return self.status in (MaskStatus.GT_EMPTY, MaskStatus.BOTH_EMPTY)


def _check_labels(name: str, labels: np.ndarray) -> None:
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be an integer label array, got dtype {labels.dtype}")
    bad = sorted(set(np.unique(labels).tolist()) - LABEL_VALUES)
    if bad:
        raise ValueError(f"{name} has values {bad} outside the ACDC labels {sorted(LABEL_VALUES)}")


def evaluate_volume(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> dict[str, StructureMetrics]:
    """Compare two ACDC label volumes structure by structure.

    Parameters
    ----------
    pred, gt : numpy.ndarray
        Integer label volumes ``(slices, rows, cols)`` (values 0--3).
    spacing : sequence of float
        Voxel spacing ``(slice, row, col)`` in mm; the voxel volume is their
        product.

    Returns
    -------
    dict of str to StructureMetrics
        Keyed by the names of :data:`STRUCTURES` (``lv``, ``myo``, ``rv``).

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((2, 4, 4), np.uint8); gt[:, 1:3, 1:3] = 3
    >>> result = evaluate_volume(gt, gt, spacing=(10.0, 1.5, 1.5))
    >>> result["lv"].dice, result["lv"].gt_ml, result["rv"].status.value
    (1.0, 0.18, 'both_empty')
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"need two 3D label volumes of the same shape, got {pred.shape} and {gt.shape}")
    _check_labels("pred", pred)
    _check_labels("gt", gt)
    voxel_mm3 = float(np.prod([float(s) for s in spacing]))
    out = {}
    for label, name in STRUCTURES.items():
        p, g = pred == label, gt == label
        hd, hd_95, mean = distance_metrics(p, g, spacing)
        out[name] = StructureMetrics(
            dice=dice(p, g),
            hd_mm=hd,
            hd95_mm=hd_95,
            assd_mm=mean,
            pred_ml=int(np.count_nonzero(p)) * voxel_mm3 / 1000.0,
            gt_ml=int(np.count_nonzero(g)) * voxel_mm3 / 1000.0,
            status=mask_status(p, g),
        )
    return out


# ----------------------------------------------------------------------------- files and folders


@dataclass(frozen=True)
class EvaluationRow:
    """One structure of one case: the unit of the per-case CSV."""

    case: str
    phase: str
    structure: str
    metrics: StructureMetrics

    def to_dict(self) -> dict[str, str | float]:
        """Flat record keyed by :data:`CSV_COLUMNS` (status as its string value)."""
        m = self.metrics
        values = (self.case, self.phase, self.structure, m.dice, m.hd_mm, m.hd95_mm, m.assd_mm, m.gt_ml, m.pred_ml,
                  m.status.value)
        return dict(zip(CSV_COLUMNS, values, strict=True))


def _read_labels(path: Path, mapping: LabelMapping | None) -> tuple[np.ndarray, Geometry]:
    """A 3D label file as ``(slices, rows, cols)`` ACDC labels and its grid."""
    data, affine, _ = load_nifti_array(path)
    if data.shape[3] != 1:
        raise InputError(path, f"has {data.shape[3]} frames; expected a 3D label file (one phase)")
    labels = np.ascontiguousarray(np.transpose(data[..., 0], (2, 1, 0)))
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.array_equal(np.rint(labels), labels):
            raise InputError(path, "label values are not integers (is this an image rather than a label map?)")
    labels = labels.astype(np.int64)
    if mapping is not None:
        labels = mapping.apply(labels)
    bad = sorted(set(np.unique(labels).tolist()) - LABEL_VALUES)
    if bad:
        hint = f"after mapping {mapping}" if mapping else "give a label mapping such as 'mnms' or '1=3,2=2,3=1'"
        raise InputError(
            path,
            f"label values {bad} are outside the ACDC convention 0 background, 1 RV, 2 MYO, 3 LV ({hint})",
        )
    return labels.astype(np.uint8), Geometry(affine, labels.shape)


def evaluate_files(
    pred_path: PathLike,
    gt_path: PathLike,
    *,
    gt_mapping: LabelMapping | Mapping[int, int] | str | None = None,
    pred_mapping: LabelMapping | Mapping[int, int] | str | None = None,
    phase: str | None = None,
    case: str | None = None,
) -> list[EvaluationRow]:
    """Evaluate a predicted 3D NIfTI label file against its ground truth.

    Parameters
    ----------
    pred_path, gt_path : str or PathLike
        3D label files on the same grid (shape, and affine to 1e-3 mm).
    gt_mapping, pred_mapping : LabelMapping, dict, str, optional
        Label conversion to ACDC values for each side (a :class:`LabelMapping`,
        ``{their: acdc}``, a preset name or ``"1=3,2=2,3=1"``).
    phase : str, optional
        Phase name for the rows (``"ED"``, ``"ES"``); empty by default.
    case : str, optional
        Case name; by default the ground-truth file name without extension and ``_gt``.

    Returns
    -------
    list of EvaluationRow
        One row per structure, in the order of :data:`STRUCTURES`; the spacing
        is that of the files' affine.

    Raises
    ------
    InputError
        Unreadable files, a 4D file, different grids, non-integer labels or
        values outside the ACDC labels (after mapping).
    ValueError
        A malformed label mapping.
    """
    gt_map, pred_map = _as_mapping(gt_mapping), _as_mapping(pred_mapping)
    pred_file, gt_file = Path(pred_path), Path(gt_path)
    gt, gt_grid = _read_labels(gt_file, gt_map)
    pred, pred_grid = _read_labels(pred_file, pred_map)
    if pred_grid.shape != gt_grid.shape:
        raise InputError(
            pred_file,
            f"shape (slices, rows, cols) {pred_grid.shape} differs from the ground truth {gt_file} {gt_grid.shape}",
        )
    if not pred_grid.same_grid(gt_grid):
        raise InputError(pred_file, f"affine differs from that of the ground truth {gt_file} (by more than 1e-3 mm)")
    name = case if case is not None else re.sub(r"_gt$", "", _strip_nifti(gt_file.name))
    results = evaluate_volume(pred, gt, gt_grid.spacing)
    return [EvaluationRow(name, phase or "", structure, m) for structure, m in results.items()]


def _phase_of(gt_file: Path, cache: dict[Path, tuple[int | None, int | None]]) -> str:
    """``"ED"``/``"ES"`` from the ``Info.cfg`` beside an ACDC ``..._frameFF_gt`` file, else ``""``."""
    match = _FRAME_RE.search(_strip_nifti(gt_file.name))
    info_path = gt_file.parent / "Info.cfg"
    if match is None or not info_path.is_file():
        return ""
    if info_path not in cache:
        info = parse_info_cfg(info_path)
        cache[info_path] = (info.ed, info.es)
    ed, es = cache[info_path]
    frame = int(match[1])
    return "ED" if frame == ed else "ES" if frame == es else ""


def _nifti_files(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*")
        if is_nifti_path(p) and p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _pair_files(pred_dir: Path, gt_dir: Path) -> list[tuple[Path, Path]]:
    """``(prediction, ground truth)`` pairs; see :func:`evaluate_folders` for the naming rules."""
    for folder in (pred_dir, gt_dir):
        if not folder.is_dir():
            raise InputError(folder, "folder does not exist" if not folder.exists() else "is not a folder")
    gt_files = _nifti_files(gt_dir)
    if any(_strip_nifti(p.name).endswith("_gt") for p in gt_files):
        gt_files = [p for p in gt_files if _strip_nifti(p.name).endswith("_gt")]
    if not gt_files:
        raise InputError(gt_dir, "no NIfTI label files found (.nii or .nii.gz, searched recursively)")
    predictions: dict[str, list[Path]] = {}
    for p in _nifti_files(pred_dir):
        predictions.setdefault(_strip_nifti(p.name), []).append(p)
    pairs, missing = [], []
    for gt_file in gt_files:
        stem = _strip_nifti(gt_file.name)
        names = dict.fromkeys([stem, re.sub(r"_gt$", "", stem)])
        found = [p for name in names for p in predictions.get(name, [])]
        if not found:
            missing.append(gt_file.relative_to(gt_dir).as_posix())
        elif len(found) > 1:
            listed = ", ".join(p.relative_to(pred_dir).as_posix() for p in found)
            raise InputError(pred_dir, f"several predictions match {gt_file.name}: {listed}")
        else:
            pairs.append((found[0], gt_file))
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise InputError(pred_dir, f"no prediction for {len(missing)} ground-truth file(s): {shown}")
    return pairs


def evaluate_folders(
    pred_dir: PathLike,
    gt_dir: PathLike,
    *,
    gt_mapping: LabelMapping | Mapping[int, int] | str | None = None,
    pred_mapping: LabelMapping | Mapping[int, int] | str | None = None,
) -> list[EvaluationRow]:
    """Evaluate every ground-truth file of a folder against its prediction.

    Ground truth is searched recursively, so ``gt_dir`` may be an ACDC
    training tree (``patientNNN/patientNNN_frameFF_gt.nii.gz``); when any file
    ends in ``_gt`` only those are ground truth (images beside them are
    ignored), otherwise every NIfTI file is. The prediction for
    ``X_gt.nii.gz`` is ``X_gt.nii[.gz]`` or ``X.nii[.gz]`` anywhere under
    ``pred_dir``; predictions without ground truth are ignored. The phase is
    ``ED`` or ``ES`` when an ``Info.cfg`` beside the ground truth names frame
    ``FF`` of its file name as such, and empty otherwise.

    Parameters
    ----------
    pred_dir, gt_dir : str or PathLike
        Folders of predicted and ground-truth 3D label files.
    gt_mapping, pred_mapping : LabelMapping, dict, str, optional
        Label conversion per side, as in :func:`evaluate_files`.

    Returns
    -------
    list of EvaluationRow
        Three rows (structures) per case, cases in sorted path order.

    Raises
    ------
    InputError
        Missing folders, no ground truth, missing (listed) or ambiguous
        predictions, and any problem of :func:`evaluate_files`.
    """
    gt_map, pred_map = _as_mapping(gt_mapping), _as_mapping(pred_mapping)
    cache: dict[Path, tuple[int | None, int | None]] = {}
    rows: list[EvaluationRow] = []
    for pred_file, gt_file in _pair_files(Path(pred_dir), Path(gt_dir)):
        phase = _phase_of(gt_file, cache)
        rows += evaluate_files(pred_file, gt_file, gt_mapping=gt_map, pred_mapping=pred_map, phase=phase)
    return rows


# ----------------------------------------------------------------------------- summary and output


@dataclass(frozen=True)
class MeanSD:
    """Mean and sample standard deviation (ddof 1) of the finite values, and their count."""

    mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> MeanSD:
        """Summarise values, ignoring NaN (SD is NaN for fewer than two values)."""
        finite = np.array([v for v in values if not math.isnan(v)], dtype=float)
        mean = float(finite.mean()) if finite.size else math.nan
        sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        return cls(mean, sd, int(finite.size))


@dataclass(frozen=True)
class StructureSummary:
    """Mean ± SD of each metric over the cases of one structure and phase.

    ``n_cases`` counts rows; each :class:`MeanSD` counts the finite values
    (distances are NaN where exactly one mask was empty).
    """

    structure: str
    phase: str
    n_cases: int
    dice: MeanSD
    hd_mm: MeanSD
    hd95_mm: MeanSD
    assd_mm: MeanSD


def summarize(rows: Iterable[EvaluationRow]) -> list[StructureSummary]:
    """Mean ± SD per structure and phase (NaN-aware).

    Returns
    -------
    list of StructureSummary
        Ordered by structure (as :data:`STRUCTURES`, others after) and phase
        (``ED``, ``ES``, then others alphabetically, empty last).
    """
    groups: dict[tuple[str, str], list[StructureMetrics]] = {}
    for row in rows:
        groups.setdefault((row.structure, row.phase), []).append(row.metrics)
    order = list(STRUCTURES.values())

    def key(item: tuple[str, str]) -> tuple:
        structure, phase = item
        s = order.index(structure) if structure in order else len(order)
        p = {"ED": 0, "ES": 1, "": 3}.get(phase, 2)
        return s, structure, p, phase

    return [
        StructureSummary(
            structure,
            phase,
            len(ms),
            dice=MeanSD.of(m.dice for m in ms),
            hd_mm=MeanSD.of(m.hd_mm for m in ms),
            hd95_mm=MeanSD.of(m.hd95_mm for m in ms),
            assd_mm=MeanSD.of(m.assd_mm for m in ms),
        )
        for (structure, phase), ms in sorted(groups.items(), key=lambda kv: key(kv[0]))
    ]


def format_summary(summaries: Sequence[StructureSummary]) -> str:
    """Plain-text table: one line per structure × phase, columns Dice, HD, HD95, ASSD (mean ± SD).

    A metric with fewer finite values than cases shows its count, e.g.
    ``12.30 ± 4.10 (n=9)``.
    """
    header = ["structure", "phase", "n", "Dice", "HD (mm)", "HD95 (mm)", "ASSD (mm)"]

    def cell(stat: MeanSD, n_cases: int, digits: int) -> str:
        text = f"{stat.mean:.{digits}f} ± {stat.sd:.{digits}f}"
        return text if stat.n == n_cases else f"{text} (n={stat.n})"

    table = [header] + [
        [s.structure, s.phase or "-", str(s.n_cases), cell(s.dice, s.n_cases, 3),
         cell(s.hd_mm, s.n_cases, 2), cell(s.hd95_mm, s.n_cases, 2), cell(s.assd_mm, s.n_cases, 2)]
        for s in summaries
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def write_csv(rows: Iterable[EvaluationRow], path: PathLike, *, overwrite: bool = False) -> Path:
    """Write per-case rows as CSV (NaN written as ``NaN``), atomically.

    Parameters
    ----------
    rows : iterable of EvaluationRow
    path : str or PathLike
        Output file.
    overwrite : bool
        Replace an existing file (otherwise :class:`~opencmr.errors.OutputError`).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    records = [row.to_dict() for row in rows]
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for record in records:
                writer.writerow({k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()})
    return target
