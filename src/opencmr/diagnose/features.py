"""Diagnostic features of a study, from its segmentation at ED and ES (and the measurements made from it).

Every feature has a name with its unit, a description and a direction a
clinician would recognise (:data:`FEATURES`). They follow the handcrafted
features of the ACDC challenge's best classifiers [1]_ [2]_: indexed volumes
and ejection fractions of both ventricles, LV mass and its ratio to volume
(concentric remodelling), RV/LV size ratios, wall thickness (maximum, mean,
regional variation) and systolic thickening (regional hypokinesia of an
infarct), and shape (sphericity of the dilated LV).

References
----------
.. [1] J. M. Wolterink et al., "Automatic segmentation and disease
   classification using cardiac cine MR images", STACOM 2017 (ACDC),
   doi:10.1007/978-3-319-75541-0_11.
.. [2] F. Isensee et al., "Automatic cardiac disease assessment on cine-MRI
   via time-series segmentation and domain specific features", STACOM 2017,
   doi:10.1007/978-3-319-75541-0_13.
.. [3] O. Bernard et al., "Deep learning techniques for automatic MRI cardiac
   multi-structures segmentation and diagnosis: is the problem solved?",
   IEEE TMI 37, 2018, doi:10.1109/TMI.2018.2837502 (the ACDC groups' criteria).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from opencmr.io.study import LabelMap
from opencmr.labels import Label
from opencmr.measure.function import Measurements

__all__ = ["FEATURES", "Feature", "FeatureVector", "MissingInputError", "extract_features"]


@dataclass(frozen=True)
class Feature:
    """One named feature: its unit and what it says."""

    name: str
    unit: str
    description: str


FEATURES: tuple[Feature, ...] = (
    Feature("lv_edv_ml_m2", "mL/m²", "LV end-diastolic volume indexed to BSA (dilatation: DCM, MINF)"),
    Feature("lv_esv_ml_m2", "mL/m²", "LV end-systolic volume indexed to BSA"),
    Feature("lv_ef_percent", "%", "LV ejection fraction (reduced in DCM and MINF)"),
    Feature("rv_edv_ml_m2", "mL/m²", "RV end-diastolic volume indexed to BSA (dilated in abnormal RV)"),
    Feature("rv_esv_ml_m2", "mL/m²", "RV end-systolic volume indexed to BSA"),
    Feature("rv_ef_percent", "%", "RV ejection fraction"),
    Feature("lv_mass_g_m2", "g/m²", "LV mass indexed to BSA (raised in HCM)"),
    Feature("lv_mass_to_edv_g_ml", "g/mL", "LV mass / LV EDV: concentric remodelling (high in HCM)"),
    Feature("rv_lv_edv_ratio", "1", "RV EDV / LV EDV (high in abnormal RV, low in DCM)"),
    Feature("rv_lv_esv_ratio", "1", "RV ESV / LV ESV"),
    Feature("max_wall_thickness_mm", "mm", "largest ED wall thickness (>= 15 mm: hypertrophy)"),
    Feature("mean_wall_thickness_mm", "mm", "mean ED wall thickness over the AHA segments"),
    Feature(
        "wall_thickness_cv", "1", "coefficient of variation of ED segment thickness (asymmetric HCM, thinned infarct)"
    ),
    Feature("mean_thickening_percent", "%", "mean systolic wall thickening over the segments"),
    Feature("min_thickening_percent", "%", "lowest segment thickening (regional akinesia in MINF)"),
    Feature("thickening_cv", "1", "spread of thickening between segments (regional versus global dysfunction)"),
    Feature("lv_sphericity", "1", "LV cavity width / length at ED (a dilated LV becomes spherical)"),
    Feature("myocardial_volume_es_ed_ratio", "1", "myocardial volume ES / ED (consistency check, about 1)"),
)
NAMES = tuple(f.name for f in FEATURES)


class MissingInputError(ValueError):
    """A feature the classifier needs cannot be computed (e.g. no height and weight for indexed volumes)."""


@dataclass(frozen=True)
class FeatureVector:
    """Feature values in :data:`FEATURES` order (NaN where undefined), with what was noticed."""

    values: Mapping[str, float]
    notes: tuple[str, ...] = ()

    def array(self) -> np.ndarray:
        return np.array([self.values[name] for name in NAMES], dtype=np.float64)

    def to_dict(self) -> dict[str, float | None]:
        return {name: None if not math.isfinite(self.values[name]) else round(self.values[name], 4) for name in NAMES}


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or b <= 0:
        return math.nan
    return a / b


def _finite(values: Mapping[int, float]) -> np.ndarray:
    array = np.array(list(values.values()), dtype=np.float64)
    return array[np.isfinite(array)]


def _cv(values: np.ndarray) -> float:
    return float(np.std(values) / np.mean(values)) if values.size > 1 and np.mean(values) > 0 else math.nan


def lv_sphericity(labels_ed: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """LV cavity width / length at ED: mean diameter of the largest cavity slice over the stack extent of the cavity.

    The length is counted over the slices holding LV cavity (slice spacing x
    count, the short-axis stack's coverage of the cavity), so it is a
    relative measure; a sphere gives about 1, a normal LV about 0.5-0.6.
    """
    cavity = np.asarray(labels_ed) == int(Label.LV_BLOOD_POOL)
    areas = cavity.sum(axis=(1, 2)) * spacing[1] * spacing[2]
    if not np.any(areas > 0):
        return math.nan
    diameter = 2.0 * math.sqrt(float(areas.max()) / math.pi)
    length = float(np.count_nonzero(areas)) * spacing[0]
    return diameter / length


def extract_features(measurements: Measurements, labels: LabelMap, *, require_bsa: bool = True) -> FeatureVector:
    """The features of :data:`FEATURES` from a study's measurements and segmentation.

    Parameters
    ----------
    measurements : Measurements
        From :func:`opencmr.measure.function.measure_function` on ``labels``.
    labels : LabelMap
        The segmentation (ED and ES at least).
    require_bsa : bool
        Refuse (:class:`MissingInputError`) when height and weight are unknown,
        since the indexed volumes and mass then cannot be computed.

    Raises
    ------
    MissingInputError
        No body-surface area and ``require_bsa``; no wall thickness at ED.
    """
    v = measurements.values
    if require_bsa and v.get("bsa_m2") is None:
        raise MissingInputError(
            "diagnosis needs height and weight (indexed volumes and mass): give --height and --weight"
        )
    if measurements.thickening is None:
        raise MissingInputError("diagnosis needs the wall thickness at ED and ES, which could not be measured")
    ed_thick = _finite(measurements.thickening.ed.mean_mm)
    thickening = _finite(measurements.thickening.percent)
    curve_ed = measurements.curve.at(measurements.phases.ed_frame)
    curve_es = measurements.curve.at(measurements.phases.es_frame)

    def get(key: str) -> float:
        value = v.get(key)
        return math.nan if value is None else float(value)

    values = {
        "lv_edv_ml_m2": get("lv_edv_ml_m2"),
        "lv_esv_ml_m2": get("lv_esv_ml_m2"),
        "lv_ef_percent": get("lv_ef_percent"),
        "rv_edv_ml_m2": get("rv_edv_ml_m2"),
        "rv_esv_ml_m2": get("rv_esv_ml_m2"),
        "rv_ef_percent": get("rv_ef_percent"),
        "lv_mass_g_m2": get("lv_mass_g_m2"),
        "lv_mass_to_edv_g_ml": _ratio(v.get("lv_mass_g"), v.get("lv_edv_ml")),
        "rv_lv_edv_ratio": _ratio(v.get("rv_edv_ml"), v.get("lv_edv_ml")),
        "rv_lv_esv_ratio": _ratio(v.get("rv_esv_ml"), v.get("lv_esv_ml")),
        "max_wall_thickness_mm": get("max_wall_thickness_mm"),
        "mean_wall_thickness_mm": float(np.mean(ed_thick)) if ed_thick.size else math.nan,
        "wall_thickness_cv": _cv(ed_thick),
        "mean_thickening_percent": float(np.mean(thickening)) if thickening.size else math.nan,
        "min_thickening_percent": float(np.min(thickening)) if thickening.size else math.nan,
        "thickening_cv": float(np.std(thickening) / max(abs(float(np.mean(thickening))), 1.0))
        if thickening.size > 1
        else math.nan,
        "lv_sphericity": lv_sphericity(labels.frame(measurements.phases.ed_frame), labels.geometry.spacing),
        "myocardial_volume_es_ed_ratio": _ratio(curve_es["myo"], curve_ed["myo"]),
    }
    notes = tuple(f"{name} is undefined" for name, value in values.items() if not math.isfinite(value))
    return FeatureVector(values=values, notes=notes)
