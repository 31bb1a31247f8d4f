"""Diagnose one study: group, calibrated probabilities and the explanation, as ``diagnosis.json``.

The diagnosis is computed from the images only (through the segmentation and
its measurements); a group label the input may carry (ACDC's Info.cfg) is
never read.

``diagnosis.json`` (schema ``opencmr.diagnosis/1``): ``group`` (NOR, DCM,
HCM, MINF or RV; null when the diagnosis was refused, with ``reason``),
``probabilities`` (group -> probability), ``explanation`` (sentences, most
important first), ``contributions`` (feature, value, unit, log-odds
contribution), ``features`` (all feature values), ``model`` (name and
cross-validated performance) and ``disclaimer``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opencmr.diagnose.features import FEATURES, FeatureVector, MissingInputError, extract_features
from opencmr.diagnose.model import DiagnosisModel, load_diagnosis_model
from opencmr.io._atomic import atomic_output
from opencmr.io.study import LabelMap
from opencmr.measure.function import Measurements
from opencmr.measure.reference import flag_values

__all__ = ["SCHEMA", "Diagnosis", "diagnose", "write_diagnosis_json"]

SCHEMA = "opencmr.diagnosis/1"
DISCLAIMER = "Research software, not a medical device: not for clinical decisions."
_UNITS = {f.name: f.unit for f in FEATURES}
_DESCRIPTIONS = {f.name: f.description for f in FEATURES}


@dataclass(frozen=True)
class Diagnosis:
    """The result for one study (``group`` None when refused, with ``reason``)."""

    group: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    explanation: tuple[str, ...] = ()
    contributions: tuple[dict[str, Any], ...] = ()
    features: dict[str, float | None] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "group": self.group,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "explanation": list(self.explanation),
            "contributions": list(self.contributions),
            "features": self.features,
            "model": self.model,
            "reason": self.reason,
            "disclaimer": DISCLAIMER,
        }


def _sentence(name: str, value: float, flags: dict[str, str]) -> str:
    if name in flags:
        return flags[name]
    unit = _UNITS[name]
    shown = f"{value:.2f}" if unit == "1" else f"{value:.1f} {unit}"
    return f"{_DESCRIPTIONS[name].split(' (')[0]}: {shown}"


def diagnose(
    measurements: Measurements, labels: LabelMap, model: DiagnosisModel | None = None, top: int = 4
) -> Diagnosis:
    """Group, probabilities and explanation of one study from its measurements and segmentation.

    A study without height and weight (needed for the indexed volumes the
    model uses) is refused: ``group`` is None and ``reason`` says why.
    """
    model = model or load_diagnosis_model()
    try:
        vector: FeatureVector = extract_features(measurements, labels)
    except MissingInputError as exc:
        return Diagnosis(group=None, reason=str(exc), model=_model_card(model))
    x = vector.array()
    probabilities = model.predict_proba(x)[0]
    k = int(probabilities.argmax())
    group = model.groups[k]
    contributions = model.explain(x, group, top=top)
    sex = measurements.subject.sex
    flags = {f.index: f.text for f in flag_values(vector.values, sex) if f.status.value != "unknown"}
    explanation = tuple(_sentence(c.feature, c.value, flags) for c in contributions)
    return Diagnosis(
        group=group,
        probabilities={g: float(p) for g, p in zip(model.groups, probabilities)},
        explanation=explanation,
        contributions=tuple(
            {
                "feature": c.feature,
                "value": round(c.value, 4),
                "unit": _UNITS[c.feature],
                "log_odds": round(c.contribution, 4),
            }
            for c in contributions
        ),
        features=vector.to_dict(),
        model=_model_card(model),
    )


def _model_card(model: DiagnosisModel) -> dict[str, Any]:
    info = model.info
    return {k: info[k] for k in ("name", "cross_validation") if k in info}


def write_diagnosis_json(diagnosis: Diagnosis, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``diagnosis.json`` (see the module docstring)."""
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        tmp.write_text(json.dumps(diagnosis.to_dict(), indent=1, allow_nan=False, default=_json_default) + "\n")
    return target


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
