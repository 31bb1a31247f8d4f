"""Segmentation evaluation as in the literature: Dice and 3D surface distances in mm per structure and phase.

:mod:`opencmr.evaluate.metrics` holds the pure metrics of binary masks and
their empty-mask conventions; :mod:`opencmr.evaluate.segmentation` applies
them to ACDC label volumes, files and folders and summarises the results.
"""

from opencmr.evaluate.metrics import (
    MaskStatus,
    assd,
    dice,
    distance_metrics,
    hausdorff,
    hd95,
    mask_status,
    surface_distances,
)
from opencmr.evaluate.segmentation import (
    STRUCTURES,
    EvaluationRow,
    LabelMapping,
    StructureMetrics,
    StructureSummary,
    evaluate_files,
    evaluate_folders,
    evaluate_volume,
    format_summary,
    summarize,
    write_csv,
)

__all__ = [
    "STRUCTURES",
    "EvaluationRow",
    "LabelMapping",
    "MaskStatus",
    "StructureMetrics",
    "StructureSummary",
    "assd",
    "dice",
    "distance_metrics",
    "evaluate_files",
    "evaluate_folders",
    "evaluate_volume",
    "format_summary",
    "hausdorff",
    "hd95",
    "mask_status",
    "summarize",
    "surface_distances",
    "write_csv",
]
