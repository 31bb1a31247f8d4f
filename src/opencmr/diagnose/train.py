"""Training the diagnosis model on labelled patients: features, cross-validated model choice, calibration.

Each patient contributes features twice: from the expert segmentation and from
the segmentation predicted by the bundled model, so that training sees the
segmentation errors it will meet in use; cross-validation keeps both rows of a
patient in the same fold and scores only the rows from predicted
segmentations. Candidates (regularised logistic regression at several
strengths, random forest, gradient boosting) are compared by the same
stratified, patient-grouped cross-validation; the logistic regression is
shipped as JSON (:mod:`opencmr.diagnose.model`), its temperature fitted on the
cross-validated predictions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opencmr.diagnose.features import NAMES, extract_features
from opencmr.diagnose.model import GROUPS, DiagnosisModel
from opencmr.io.read import read_study
from opencmr.measure.function import Subject, measure_function

__all__ = ["CANDIDATES", "FeatureTable", "collect_features", "cross_validated_proba", "fit_logistic", "fit_temperature"]


@dataclass(frozen=True)
class FeatureTable:
    """Feature rows: patient id, segmentation source (``"expert"``/``"predicted"``), group, values."""

    patients: tuple[str, ...]
    sources: tuple[str, ...]
    groups: tuple[str, ...]
    x: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(NAMES),
            "rows": [
                {
                    "patient": p,
                    "source": s,
                    "group": g,
                    "values": [None if not math.isfinite(v) else float(v) for v in row],
                }
                for p, s, g, row in zip(self.patients, self.sources, self.groups, self.x)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureTable:
        rows = data["rows"]
        x = np.array([[math.nan if v is None else v for v in r["values"]] for r in rows], dtype=np.float64)
        return cls(
            tuple(r["patient"] for r in rows), tuple(r["source"] for r in rows), tuple(r["group"] for r in rows), x
        )


def collect_features(
    folders: Sequence[Path], segmenter: Any | Mapping[str, Any], progress: Callable[[int, int], None] | None = None
) -> FeatureTable:
    """Features from the expert and the predicted segmentation of every labelled patient folder (ACDC layout).

    ``segmenter`` is one model for every patient, or a mapping from patient
    (folder name) to the model that segments it: the fold model that never
    saw the patient, which gives out-of-fold predicted segmentations.
    """
    from opencmr.segment.inference import segment_study

    patients, sources, groups, rows = [], [], [], []
    for done, folder in enumerate(folders, start=1):
        study = read_study(folder)
        meta = study.metadata
        if study.labels is None or meta.group is None:
            raise ValueError(f"{folder} has no labels or no group in Info.cfg")
        subject = Subject(height_cm=meta.height_cm, weight_kg=meta.weight_kg)
        model = segmenter[folder.name] if isinstance(segmenter, Mapping) else segmenter
        predicted = segment_study(dataclasses.replace(study, labels=None), model, frames=study.labels.frame_numbers)
        for source, labels in (("expert", study.labels), ("predicted", predicted)):
            m = measure_function(labels, subject, ed_frame=meta.ed_frame, es_frame=meta.es_frame)
            rows.append(extract_features(m, labels).array())
            patients.append(folder.name)
            sources.append(source)
            groups.append(meta.group.value)
        if progress is not None:
            progress(done, len(folders))
    return FeatureTable(tuple(patients), tuple(sources), tuple(groups), np.array(rows))


def _standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    impute = np.nanmedian(x, axis=0)
    filled = np.where(np.isfinite(x), x, impute)
    mean, scale = filled.mean(axis=0), filled.std(axis=0)
    return mean, np.where(scale > 0, scale, 1.0), impute


def fit_logistic(x: np.ndarray, y: Sequence[str], c: float, info: dict[str, Any] | None = None) -> DiagnosisModel:
    """Multinomial logistic regression (L2, strength ``1 / c``) on standardised features."""
    from sklearn.linear_model import LogisticRegression

    mean, scale, impute = _standardisation(x)
    z = (np.where(np.isfinite(x), x, impute) - mean) / scale
    target = np.array([GROUPS.index(g) for g in y])
    clf = LogisticRegression(C=c, max_iter=5000)
    clf.fit(z, target)
    coef = np.zeros((len(GROUPS), x.shape[1]))
    intercept = np.zeros(len(GROUPS))
    coef[clf.classes_] = clf.coef_
    intercept[clf.classes_] = clf.intercept_
    return DiagnosisModel(NAMES, mean, scale, impute, coef, intercept, info=info or {})


CANDIDATES: dict[str, Callable[[], Any]] = {}


def _sklearn_candidates() -> dict[str, Callable[[], Any]]:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    return {
        "random forest (500 trees)": lambda: RandomForestClassifier(n_estimators=500, random_state=0),
        "gradient boosting": lambda: GradientBoostingClassifier(random_state=0),
    }


def _folds(table: FeatureTable, n_folds: int, seed: int, fold_of: Mapping[str, int] | None = None) -> list[np.ndarray]:
    """Patient-grouped, group-stratified folds: each fold's held-out row indices.

    ``fold_of`` (patient → fold) fixes the folds instead, e.g. to the folds of
    the segmentation models that made the out-of-fold segmentations.
    """
    if fold_of is not None:
        missing = sorted(set(table.patients) - set(fold_of))
        if missing:
            raise ValueError(f"no fold given for patients {missing[:5]}")
        ids = np.array([int(fold_of[p]) for p in table.patients])
        return [np.flatnonzero(ids == k) for k in sorted(set(ids.tolist()))]
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[str]] = {}
    for patient, group in dict(zip(table.patients, table.groups)).items():
        by_group.setdefault(group, []).append(patient)
    fold_of: dict[str, int] = {}
    for group in sorted(by_group):
        members = list(rng.permutation(sorted(by_group[group])))
        for k, patient in enumerate(members):
            fold_of[str(patient)] = k % n_folds
    ids = np.array([fold_of[p] for p in table.patients])
    return [np.flatnonzero(ids == k) for k in range(n_folds)]


def cross_validated_proba(
    table: FeatureTable,
    fit: Callable[[np.ndarray, list[str]], Callable[[np.ndarray], np.ndarray]],
    n_folds: int = 5,
    seed: int = 0,
    fold_of: Mapping[str, int] | None = None,
) -> np.ndarray:
    """Out-of-fold probabilities ``(rows, groups)``: each patient predicted by a model that never saw it."""
    proba = np.full((len(table.patients), len(GROUPS)), np.nan)
    for held in _folds(table, n_folds, seed, fold_of):
        train = np.setdiff1d(np.arange(len(table.patients)), held)
        predict = fit(table.x[train], [table.groups[i] for i in train])
        proba[held] = predict(table.x[held])
    return proba


def logistic_fitter(c: float) -> Callable[[np.ndarray, list[str]], Callable[[np.ndarray], np.ndarray]]:
    def fit(x: np.ndarray, y: list[str]) -> Callable[[np.ndarray], np.ndarray]:
        return fit_logistic(x, y, c).predict_proba

    return fit


def sklearn_fitter(make: Callable[[], Any]) -> Callable[[np.ndarray, list[str]], Callable[[np.ndarray], np.ndarray]]:
    def fit(x: np.ndarray, y: list[str]) -> Callable[[np.ndarray], np.ndarray]:
        impute = np.nanmedian(x, axis=0)
        clf = make().fit(np.where(np.isfinite(x), x, impute), [GROUPS.index(g) for g in y])

        def predict(xt: np.ndarray) -> np.ndarray:
            out = np.zeros((len(xt), len(GROUPS)))
            out[:, clf.classes_] = clf.predict_proba(np.where(np.isfinite(xt), xt, impute))
            return out

        return predict

    return fit


def fit_temperature(logits: np.ndarray, y: Sequence[str]) -> float:
    """The softmax temperature minimising the negative log-likelihood of ``logits`` (golden-section on log T)."""
    target = np.array([GROUPS.index(g) for g in y])

    def nll(log_t: float) -> float:
        z = logits / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(target)), target].mean())

    lo, hi = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return math.exp((lo + hi) / 2)


def _subset(table: FeatureTable, rows: np.ndarray) -> FeatureTable:
    return FeatureTable(
        tuple(table.patients[i] for i in rows), tuple(table.sources[i] for i in rows),
        tuple(table.groups[i] for i in rows), table.x[rows],
    )


def _accuracy_log_loss(proba: np.ndarray, truth: Sequence[str]) -> tuple[float, float]:
    target = np.array([GROUPS.index(g) for g in truth])
    accuracy = float(np.mean(proba.argmax(axis=1) == target))
    log_loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(target)), target], 1e-12, 1.0))))
    return accuracy, log_loss


def nested_cross_validated_proba(
    table: FeatureTable,
    c_grid: Sequence[float],
    n_folds: int = 5,
    seed: int = 0,
    fold_of: Mapping[str, int] | None = None,
    inner_folds: int = 4,
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Calibrated out-of-fold probabilities with every choice made inside the training folds.

    For each outer fold, an inner cross-validation over the remaining
    patients picks the logistic regression's ``C`` from ``c_grid`` (best
    accuracy on rows from predicted segmentations, then log loss) and fits the
    temperature on the inner out-of-fold predictions; the model refitted on
    all remaining rows with that ``C`` and temperature then predicts the
    held-out patients. The reported performance is therefore not tuned on
    the patients it is measured on (Varma and Simon, BMC Bioinformatics 7:91,
    2006, doi:10.1186/1471-2105-7-91).

    Returns
    -------
    proba : ndarray, shape (rows, groups)
        Calibrated probabilities for every row (expert and predicted sources).
    choices : list of dict
        Per outer fold: ``fold``, ``c`` and ``temperature``.
    """
    predicted = np.array([s == "predicted" for s in table.sources])
    proba = np.full((len(table.patients), len(GROUPS)), np.nan)
    choices: list[dict[str, float]] = []
    for k, held in enumerate(_folds(table, n_folds, seed, fold_of)):
        fold_id = int(fold_of[table.patients[held[0]]]) if fold_of is not None else k
        train_rows = np.setdiff1d(np.arange(len(table.patients)), held)
        inner = _subset(table, train_rows)
        mask = predicted[train_rows]
        truth = [g for g, m in zip(inner.groups, mask) if m]
        scored = []
        for c in c_grid:
            p = cross_validated_proba(inner, logistic_fitter(c), inner_folds, seed + 1 + k)[mask]
            accuracy, log_loss = _accuracy_log_loss(p, truth)
            scored.append((-accuracy, log_loss, float(c), p))
        _, _, c, p = min(scored, key=lambda item: item[:3])
        temperature = fit_temperature(np.log(np.clip(p, 1e-12, 1.0)), truth)
        model = fit_logistic(inner.x, list(inner.groups), c)
        model = dataclasses.replace(model, temperature=temperature)
        proba[held] = model.predict_proba(table.x[held])
        choices.append({"fold": fold_id, "c": c, "temperature": temperature})
    return proba, choices
