"""Folds fixed by a patient → fold mapping, and nested cross-validation of the diagnosis model (synthetic features)."""

from __future__ import annotations

import numpy as np
import pytest

from opencmr.diagnose.features import NAMES
from opencmr.diagnose.model import GROUPS
from opencmr.diagnose.train import (
    FeatureTable,
    _folds,
    cross_validated_proba,
    fit_logistic,
    logistic_fitter,
    nested_cross_validated_proba,
)

PER_GROUP = 8
C_GRID = (0.1, 1.0)


def synthetic_table(separation: float, seed: int = 0, twin_noise: float = 0.05) -> FeatureTable:
    """40 patients (8 per group), an expert and a predicted row each; group means ``separation`` apart."""
    rng = np.random.default_rng(seed)
    centres = separation * rng.normal(size=(len(GROUPS), len(NAMES)))
    patients, sources, groups, rows = [], [], [], []
    for g, group in enumerate(GROUPS):
        for i in range(PER_GROUP):
            expert = centres[g] + rng.normal(size=len(NAMES))
            predicted = expert + twin_noise * rng.normal(size=len(NAMES))
            for source, row in (("expert", expert), ("predicted", predicted)):
                patients.append(f"{group}{i:02d}")
                sources.append(source)
                groups.append(group)
                rows.append(row)
    return FeatureTable(tuple(patients), tuple(sources), tuple(groups), np.array(rows))


def predicted_accuracy(table: FeatureTable, proba: np.ndarray) -> float:
    rows = np.array([s == "predicted" for s in table.sources])
    truth = np.array([GROUPS.index(g) for g in table.groups])
    return float(np.mean(proba[rows].argmax(1) == truth[rows]))


def fold_mapping(table: FeatureTable) -> dict[str, int]:
    """Fold ids 3, 7, 8, 11 (not 0..n-1), by patient number: every group in every fold."""
    ids = (3, 7, 8, 11)
    return {p: ids[int(p[-2:]) % 4] for p in dict.fromkeys(table.patients)}


@pytest.fixture(scope="module")
def separable() -> FeatureTable:
    return synthetic_table(separation=1.5)


def test_folds_follow_the_given_mapping(separable: FeatureTable) -> None:
    fold_of = fold_mapping(separable)
    folds = _folds(separable, 5, 0, fold_of)  # n_folds and seed are ignored when the mapping is given
    assert len(folds) == 4
    for fold_id, held in zip((3, 7, 8, 11), folds):
        expected = [i for i, p in enumerate(separable.patients) if fold_of[p] == fold_id]
        assert held.tolist() == expected
        # both rows of each patient, and whole patients only
        patients = [separable.patients[i] for i in held]
        assert all(patients.count(p) == 2 for p in set(patients))
        assert sorted(separable.sources[i] for i in held) == ["expert"] * 10 + ["predicted"] * 10
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(separable.patients)))
    assert _folds(separable, 2, 99, fold_of)[0].tolist() == folds[0].tolist()


def test_a_patient_missing_from_the_mapping_is_named(separable: FeatureTable) -> None:
    fold_of = fold_mapping(separable)
    del fold_of["HCM03"]
    with pytest.raises(ValueError, match="HCM03"):
        _folds(separable, 5, 0, fold_of)


def test_cross_validation_trains_each_fold_without_its_patients(separable: FeatureTable) -> None:
    table = FeatureTable(
        separable.patients, separable.sources, separable.groups,
        np.column_stack([np.repeat(np.arange(40), 2), separable.x]),  # column 0: the patient's index
    )
    names = list(dict.fromkeys(table.patients))
    fold_of = fold_mapping(table)
    seen: list[set[str]] = []

    def fit(x: np.ndarray, y: list[str]):
        seen.append({names[int(v)] for v in x[:, 0]})

        def predict(xt: np.ndarray) -> np.ndarray:
            out = np.zeros((len(xt), len(GROUPS)))
            out[:, len(seen) % len(GROUPS)] = 1.0  # marks which fold's model predicted the row
            return out

        return predict

    proba = cross_validated_proba(table, fit, n_folds=5, seed=0, fold_of=fold_of)
    assert len(seen) == 4
    for k, fold_id in enumerate((3, 7, 8, 11)):
        held = {p for p, f in fold_of.items() if f == fold_id}
        assert seen[k] == set(names) - held
    for i, p in enumerate(table.patients):
        k = (3, 7, 8, 11).index(fold_of[p])
        assert proba[i].argmax() == (k + 1) % len(GROUPS)


def test_cross_validated_proba_with_the_mapping_on_separable_data(separable: FeatureTable) -> None:
    proba = cross_validated_proba(separable, logistic_fitter(1.0), fold_of=fold_mapping(separable))
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1.0)
    assert predicted_accuracy(separable, proba) >= 0.9


@pytest.mark.parametrize("fold_of", [None, "mapping"])
def test_nested_cv_on_separable_data(separable: FeatureTable, fold_of: str | None) -> None:
    mapping = fold_mapping(separable) if fold_of else None
    proba, choices = nested_cross_validated_proba(separable, C_GRID, n_folds=3, seed=0, fold_of=mapping, inner_folds=2)
    assert proba.shape == (80, len(GROUPS))
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1.0)
    assert len(choices) == (4 if mapping else 3)
    # the fold ids themselves (the mapping's, not positions)
    assert [c["fold"] for c in choices] == (sorted(set(mapping.values())) if mapping else list(range(3)))
    assert all(c["c"] in C_GRID and c["temperature"] > 0 for c in choices)
    assert predicted_accuracy(separable, proba) >= 0.9


def test_nested_cv_on_noise_is_near_chance() -> None:
    """Noise features with near-identical twin rows: any held-out patient's row in training would be recognised."""
    noise = synthetic_table(separation=0.0, seed=3, twin_noise=0.01)
    proba, choices = nested_cross_validated_proba(noise, C_GRID, n_folds=3, seed=0, inner_folds=2)
    assert np.all(np.isfinite(proba)) and len(choices) == 3
    assert predicted_accuracy(noise, proba) <= 0.4  # chance is 0.2
    # the test has power: a model that saw the rows it predicts scores far above chance on the same noise
    leaked = fit_logistic(noise.x, list(noise.groups), C_GRID[-1]).predict_proba(noise.x)
    assert predicted_accuracy(noise, leaked) >= 0.8
