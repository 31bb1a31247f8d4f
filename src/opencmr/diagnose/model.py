"""The diagnosis model: standardised features -> multinomial logistic regression -> calibrated probabilities.

The model is stored as plain JSON (feature names, standardisation, coefficients,
intercepts, calibration temperature, training record): loading it never
unpickles anything, so a model file from anywhere is safe to open. Inference
needs only numpy; scikit-learn is used to train (:mod:`opencmr.diagnose.train`).

Explanations are exact for this model: the log-odds of the predicted group
against the others is a sum of per-feature terms ``coef x standardised value``,
so the features that drove the decision are the largest terms.

References
----------
.. [1] C. Guo et al., "On calibration of modern neural networks", ICML 2017,
   arXiv:1706.04599 (temperature scaling).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from opencmr.errors import InputError
from opencmr.io._atomic import atomic_output

__all__ = ["DEFAULT_DIAGNOSIS_MODEL", "GROUPS", "Contribution", "DiagnosisModel", "load_diagnosis_model"]

GROUPS = ("NOR", "DCM", "HCM", "MINF", "RV")
"""The ACDC groups, in the model's class order."""
FORMAT = "opencmr-diagnosis-model"
DEFAULT_DIAGNOSIS_MODEL = "acdc_diagnosis.json"


@dataclass(frozen=True)
class Contribution:
    """How much one feature pushed the decision towards the predicted group (log-odds units)."""

    feature: str
    value: float
    contribution: float


@dataclass(frozen=True)
class DiagnosisModel:
    """Multinomial logistic regression on standardised features, with a calibration temperature.

    Parameters
    ----------
    features : tuple of str
        Feature names, in column order (:data:`opencmr.diagnose.features.FEATURES`).
    mean, scale : numpy.ndarray
        Standardisation of each feature; ``impute`` replaces missing values (the training median).
    coef : numpy.ndarray
        ``(n_groups, n_features)`` coefficients on standardised features.
    intercept : numpy.ndarray
        ``(n_groups,)``.
    temperature : float
        Logits are divided by it before the softmax (fitted on cross-validated predictions).
    info : dict
        Training record (data, cross-validation results, versions).
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    impute: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    temperature: float = 1.0
    groups: tuple[str, ...] = GROUPS
    info: Mapping[str, Any] = field(default_factory=dict)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=np.float64, ndmin=2)
        x = np.where(np.isfinite(x), x, self.impute)
        return (x - self.mean) / self.scale

    def logits(self, x: np.ndarray) -> np.ndarray:
        return (self.standardise(x) @ self.coef.T + self.intercept) / self.temperature

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(n_cases, n_groups)``."""
        z = self.logits(x)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def explain(self, x: np.ndarray, group: str, top: int = 5) -> list[Contribution]:
        """The features that pushed one case towards ``group`` most, against the mean of the other groups."""
        z = self.standardise(x)[0]
        k = self.groups.index(group)
        others = np.delete(self.coef, k, axis=0).mean(axis=0)
        terms = (self.coef[k] - others) * z / self.temperature
        raw = np.array(x, dtype=np.float64, ndmin=2)[0]
        order = np.argsort(-terms)[:top]
        return [Contribution(self.features[i], float(raw[i]), float(terms[i])) for i in order if terms[i] > 0]

    def importance(self) -> dict[str, float]:
        """Global importance: mean absolute coefficient of each (standardised) feature over the groups."""
        return {name: float(v) for name, v in zip(self.features, np.abs(self.coef).mean(axis=0))}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": 1,
            "groups": list(self.groups),
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "impute": self.impute.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "temperature": self.temperature,
            "info": dict(self.info),
        }

    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        target = Path(path)
        with atomic_output(target, overwrite) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return target

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiagnosisModel:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an opencmr diagnosis model (format {data.get('format')!r})")
        n_groups, n_features = len(data["groups"]), len(data["features"])
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "impute", "coef", "intercept")}
        if arrays["coef"].shape != (n_groups, n_features) or arrays["intercept"].shape != (n_groups,):
            raise ValueError("coefficient shapes do not match the groups and features")
        if any(arrays[k].shape != (n_features,) for k in ("mean", "scale", "impute")) or np.any(arrays["scale"] <= 0):
            raise ValueError("standardisation does not match the features")
        temperature = float(data.get("temperature", 1.0))
        if not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"invalid temperature {temperature}")
        return cls(
            features=tuple(data["features"]),
            groups=tuple(data["groups"]),
            temperature=temperature,
            info=data.get("info", {}),
            **arrays,
        )


def default_diagnosis_model_path() -> Path:
    """The bundled model file (inside the installed package)."""
    return Path(str(resources.files("opencmr.diagnose") / "weights" / DEFAULT_DIAGNOSIS_MODEL))


def load_diagnosis_model(path: str | os.PathLike[str] | None = None) -> DiagnosisModel:
    """Load a diagnosis model file (the bundled one by default).

    Raises
    ------
    InputError
        Missing, unreadable or malformed file.
    """
    path = default_diagnosis_model_path() if path is None else Path(path)
    try:
        data = json.loads(path.read_text())
        return DiagnosisModel.from_dict(data)
    except FileNotFoundError:
        raise InputError(path, "diagnosis model file not found") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a usable diagnosis model ({exc})") from None
