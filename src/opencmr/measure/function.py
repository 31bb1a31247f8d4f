"""Clinical indices of ventricular function from a segmentation: EDV, ESV, SV, EF, LV mass, cardiac output, BSA-indexed values.

Conventions (Schulz-Menger et al. 2020 [1]_): volumes by disc summation over
the short-axis stack (:mod:`opencmr.measure.volumes`); ED and ES as in
:mod:`opencmr.measure.phases`; LV mass is the myocardial volume at ED x
1.05 g/mL (myocardial density [2]_); SV = EDV - ESV, EF = SV / EDV x 100 %,
cardiac output = SV x heart rate; indexed values are divided by the
body-surface area (:mod:`opencmr.measure.body`).

The keys carry their units (``lv_edv_ml``, ``lv_ef_percent``, ``lv_mass_g``,
``lv_edv_ml_m2``, ``lv_co_l_min``, ``max_wall_thickness_mm``, ...) and are the column names of
``measurements.csv`` and the top-level keys of ``measurements.json``
(:meth:`Measurements.to_dict`).

References
----------
.. [1] J. Schulz-Menger et al., "Standardized image interpretation and
   post-processing in cardiovascular magnetic resonance - 2020 update",
   JCMR 22, 2020, 19, doi:10.1186/s12968-020-00610-6.
.. [2] A. M. Vinnakota and J. B. Bassingthwaighte, "Myocardial density and
   composition", Am J Physiol Heart Circ Physiol 286, 2004, H1742,
   doi:10.1152/ajpheart.00478.2003 (1.053 g/mL).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opencmr.io.study import LabelMap
from opencmr.measure.body import BsaFormula, body_surface_area
from opencmr.measure.phases import Phases, detect_ed_es
from opencmr.measure.reference import Flag, flag_values
from opencmr.measure.thickness import SegmentThickening, segment_thickening
from opencmr.measure.volumes import VolumeCurve, VolumeMethod, volume_curve

__all__ = ["INDEXED", "MYOCARDIAL_DENSITY_G_ML", "SCHEMA", "Measurements", "Subject", "measure_function"]

MYOCARDIAL_DENSITY_G_ML = 1.05
"""Myocardial tissue density used for LV mass (clinical convention; 1.053 g/mL measured [2]_)."""

SCHEMA = "opencmr.measurements/1"
"""Identifier of the ``measurements.json`` layout (bumped when keys change meaning)."""

UNITS_NOTE = (
    "units are in the key names: _ml millilitres, _ml_m2 mL per m2 of body-surface area, _g grams, "
    "_g_m2 g/m2, _percent %, _l_min litres/minute, _l_min_m2 L/min/m2, _mm millimetres, _m2 square metres, "
    "_cm centimetres, _kg kilograms, _bpm beats per minute; frame numbers are 0-based"
)

#: Indices divided by BSA, and the name of the indexed value (``<key>_m2``).
INDEXED = ("lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_mass_g", "rv_edv_ml", "rv_esv_ml", "rv_sv_ml", "lv_co_l_min")


@dataclass(frozen=True)
class Subject:
    """What the indices need to know about the person: all optional."""

    height_cm: float | None = None
    weight_kg: float | None = None
    sex: str | None = None
    heart_rate_bpm: float | None = None
    bsa_formula: BsaFormula = BsaFormula.MOSTELLER


@dataclass(frozen=True)
class Measurements:
    """Indices of one study, their frames, the volume curve and what was noticed on the way.

    ``values`` maps unit-bearing keys to numbers (None when they cannot be
    computed, e.g. indexed values without height and weight).
    """

    values: Mapping[str, float | None]
    phases: Phases
    curve: VolumeCurve
    subject: Subject
    notes: tuple[str, ...] = ()
    flags: tuple[Flag, ...] = ()
    """Values compared with adult reference ranges (:mod:`opencmr.measure.reference`)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    thickening: SegmentThickening | None = None
    """AHA segment wall thickness at ED and ES and systolic thickening (:mod:`opencmr.measure.thickness`)."""

    def row(self) -> dict[str, Any]:
        """One flat CSV row: the indices, ED/ES and the subject's data."""
        return {
            **{k: _round(v) for k, v in self.values.items()},
            "ed_frame": self.phases.ed_frame,
            "es_frame": self.phases.es_frame,
            "ed_es_rule": self.phases.rule.value,
            "height_cm": self.subject.height_cm,
            "weight_kg": self.subject.weight_kg,
            "sex": self.subject.sex,
            "heart_rate_bpm": self.subject.heart_rate_bpm,
        }

    def to_dict(self) -> dict[str, Any]:
        """The ``measurements.json`` document (see the README for the schema)."""
        return {
            "schema": SCHEMA,
            "units": UNITS_NOTE,
            **self.row(),
            "bsa_formula": self.subject.bsa_formula.value,
            "volume_method": self.curve.method.value,
            "myocardial_density_g_ml": MYOCARDIAL_DENSITY_G_ML,
            **self.extra,
            "flags": [flag.to_dict() for flag in self.flags],
            "volume_curve": self.curve.to_dict(),
            "notes": [*self.phases.notes, *self.notes],
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator <= 0 else numerator / denominator


def _ventricle(prefix: str, edv: float, esv: float) -> dict[str, float | None]:
    sv = edv - esv
    ef = _ratio(sv, edv)
    return {
        f"{prefix}_edv_ml": edv,
        f"{prefix}_esv_ml": esv,
        f"{prefix}_sv_ml": sv,
        f"{prefix}_ef_percent": None if ef is None else 100.0 * ef,
    }


def measure_function(
    labels: LabelMap,
    subject: Subject | None = None,
    *,
    ed_frame: int | None = None,
    es_frame: int | None = None,
    volume_method: VolumeMethod | str = VolumeMethod.VOXELS,
) -> Measurements:
    """EDV, ESV, SV, EF of both ventricles, LV mass, cardiac output and BSA-indexed values.

    Parameters
    ----------
    labels : LabelMap
        Segmentation of at least ED and ES (ACDC labels), on a grid with real spacing.
    subject : Subject, optional
        Height, weight, sex and heart rate when known (indexed values and
        cardiac output are None without them).
    ed_frame, es_frame : int, optional
        ED and ES named by the input (0-based); otherwise found from the LV volume curve.
    volume_method : {"voxels", "slice-summation"}
        See :mod:`opencmr.measure.volumes`.

    Raises
    ------
    ValueError
        The LV blood pool is empty at ED, fewer than two frames, an
        implausible height or weight, or a sex other than M/F/unknown.
    """
    subject = subject or Subject()
    curve = volume_curve(labels, volume_method)
    phases = detect_ed_es(curve, ed_frame, es_frame)
    ed, es = curve.at(phases.ed_frame), curve.at(phases.es_frame)
    if ed["lv"] <= 0:
        raise ValueError(f"the LV blood pool is empty at ED (frame {phases.ed_frame}): no function can be measured")
    notes: list[str] = []
    values: dict[str, float | None] = {**_ventricle("lv", ed["lv"], es["lv"])}
    if ed["rv"] > 0:
        values.update(_ventricle("rv", ed["rv"], es["rv"]))
    else:
        values.update(dict.fromkeys(("rv_edv_ml", "rv_esv_ml", "rv_sv_ml", "rv_ef_percent")))
        notes.append("the RV blood pool is empty at ED: RV indices are not given")
    values["lv_mass_g"] = ed["myo"] * MYOCARDIAL_DENSITY_G_ML if ed["myo"] > 0 else None
    values["lv_myocardial_volume_ed_ml"] = ed["myo"]
    rate = subject.heart_rate_bpm
    lv_sv = values["lv_sv_ml"]
    values["lv_co_l_min"] = lv_sv * rate / 1000.0 if rate and lv_sv is not None else None
    bsa = None
    if subject.height_cm and subject.weight_kg:
        bsa = body_surface_area(subject.height_cm, subject.weight_kg, subject.bsa_formula)
    else:
        notes.append("height and weight unknown: no values indexed to body-surface area")
    values["bsa_m2"] = bsa
    for key in INDEXED:
        value = values.get(key)
        values[f"{key}_m2"] = None if bsa is None or value is None else value / bsa
    thickening = _wall_thickness(labels, phases, notes)
    extra: dict[str, Any] = {}
    if thickening is not None:
        maximum = thickening.ed.max_wall_thickness()
        values["max_wall_thickness_mm"] = maximum.thickness_mm if math.isfinite(maximum.thickness_mm) else None
        extra["wall_thickness"] = {
            "max_ed": maximum.to_dict(),
            "ed": thickening.ed.to_dict(),
            "es": thickening.es.to_dict(),
            "thickening": thickening.to_dict(),
        }
    flags = tuple(flag_values(values, subject.sex))
    if any(flag.status.value == "unknown" for flag in flags):
        notes.append("sex unknown: values normal for one sex but not the other are marked 'unknown' (give the sex)")
    return Measurements(
        values=values,
        phases=phases,
        curve=curve,
        subject=subject,
        notes=tuple(notes),
        flags=flags,
        extra=extra,
        thickening=thickening,
    )


def _wall_thickness(labels: LabelMap, phases: Phases, notes: list[str]) -> SegmentThickening | None:
    """AHA segment thickness at ED and ES and the thickening between them, or None (with a note) when it cannot be measured."""
    spacing = labels.geometry.spacing
    try:
        return segment_thickening(
            labels.frame(phases.ed_frame), labels.frame(phases.es_frame), spacing, affine=labels.geometry.affine
        )
    except ValueError as exc:
        notes.append(f"wall thickness not measured: {exc}")
        return None
