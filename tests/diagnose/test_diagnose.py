"""Diagnosis: features on phantoms of each group, the JSON model, training helpers, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.diagnose.features import NAMES, MissingInputError, extract_features
from opencmr.diagnose.model import GROUPS, DiagnosisModel, load_diagnosis_model
from opencmr.diagnose.predict import diagnose
from opencmr.diagnose.train import (
    FeatureTable,
    _folds,
    cross_validated_proba,
    fit_logistic,
    fit_temperature,
    logistic_fitter,
)
from opencmr.errors import InputError
from opencmr.measure.function import Subject, measure_function
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

runner = CliRunner()


def _phantom_features(group: str, seed: int = 1, subject: Subject | None = None):
    phantom = make_phantom(PhantomConfig(group=group, n_frames=4, seed=seed))
    meta = phantom.study.metadata
    subject = subject or Subject(meta.height_cm, meta.weight_kg, sex=meta.sex)
    measurements = measure_function(phantom.study.labels, subject)
    return measurements, phantom.study.labels


@pytest.fixture(scope="module")
def by_group() -> dict[str, tuple]:
    return {group: _phantom_features(group) for group in GROUPS}


def test_features_say_what_each_group_is(by_group) -> None:
    f = {g: extract_features(*by_group[g]).values for g in GROUPS}
    assert f["DCM"]["lv_edv_ml_m2"] > 1.3 * f["NOR"]["lv_edv_ml_m2"] and f["DCM"]["lv_ef_percent"] < 40
    assert f["HCM"]["max_wall_thickness_mm"] >= 15 and f["HCM"]["lv_mass_to_edv_g_ml"] > f["NOR"]["lv_mass_to_edv_g_ml"]
    assert f["RV"]["rv_lv_edv_ratio"] > 1.5 > f["NOR"]["rv_lv_edv_ratio"]
    assert f["MINF"]["min_thickening_percent"] < f["NOR"]["min_thickening_percent"] - 10
    assert f["MINF"]["wall_thickness_cv"] > 2 * f["NOR"]["wall_thickness_cv"]
    assert set(f["NOR"]) == set(NAMES) and all(math.isfinite(v) for v in f["NOR"].values())


def test_bundled_model_calls_each_phantom_by_its_group(by_group) -> None:
    """A dilated phantom is called DCM, a thick-walled one HCM, and so on (the model never saw phantoms)."""
    model = load_diagnosis_model()
    for group, (measurements, labels) in by_group.items():
        result = diagnose(measurements, labels, model)
        assert result.group == group, (group, result.probabilities)
        assert sum(result.probabilities.values()) == pytest.approx(1.0)
        assert result.explanation and all(isinstance(s, str) for s in result.explanation)
    dcm = diagnose(*by_group["DCM"], model)
    assert any("LVEF" in s or "LV EDV" in s or "LV end-systolic" in s for s in dcm.explanation)


def test_refused_without_height_and_weight() -> None:
    measurements, labels = _phantom_features("NOR", subject=Subject())
    with pytest.raises(MissingInputError, match="needs height and weight"):
        extract_features(measurements, labels)
    result = diagnose(measurements, labels)
    assert result.group is None and "height and weight" in result.reason
    assert result.to_dict()["group"] is None


# --------------------------------------------------------------------------- the JSON model


def test_model_json_round_trip_and_errors(tmp_path: Path) -> None:
    model = load_diagnosis_model()
    again = DiagnosisModel.from_dict(json.loads(json.dumps(model.to_dict())))
    x = np.linspace(0.5, 2.0, len(NAMES))
    np.testing.assert_allclose(again.predict_proba(x), model.predict_proba(x))
    bad = model.to_dict() | {"format": "pickle"}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="not a usable diagnosis model"):
        load_diagnosis_model(tmp_path / "bad.json")
    shapes = model.to_dict() | {"coef": [[0.0]]}
    (tmp_path / "shapes.json").write_text(json.dumps(shapes))
    with pytest.raises(InputError, match="coefficient shapes"):
        load_diagnosis_model(tmp_path / "shapes.json")
    with pytest.raises(InputError, match="not found"):
        load_diagnosis_model(tmp_path / "missing.json")


def test_missing_feature_values_are_imputed_not_propagated() -> None:
    model = load_diagnosis_model()
    x = np.full(len(NAMES), np.nan)
    p = model.predict_proba(x)
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------- training helpers


def _toy_table(n_per_group: int = 6, seed: int = 0) -> FeatureTable:
    rng = np.random.default_rng(seed)
    rows, patients, groups, sources = [], [], [], []
    for k, group in enumerate(GROUPS):
        for i in range(n_per_group):
            centre = np.zeros(len(NAMES))
            centre[k] = 4.0  # each group separated along its own feature
            for source in ("expert", "predicted"):
                rows.append(centre + rng.normal(0, 0.5, len(NAMES)))
                patients.append(f"{group}{i}")
                groups.append(group)
                sources.append(source)
    return FeatureTable(tuple(patients), tuple(sources), tuple(groups), np.array(rows))


def test_folds_keep_a_patient_on_one_side_and_cross_validation_separates_toy_groups() -> None:
    table = _toy_table()
    folds = _folds(table, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(table.patients)))
    for held in folds:
        inside = {table.patients[i] for i in held}
        outside = {table.patients[i] for i in np.setdiff1d(np.arange(len(table.patients)), held)}
        assert not inside & outside
    proba = cross_validated_proba(table, logistic_fitter(1.0), n_folds=3)
    assert np.mean(np.array(GROUPS)[proba.argmax(axis=1)] == np.array(table.groups)) > 0.95
    model = fit_logistic(table.x, list(table.groups), 1.0)
    assert model.explain(table.x[0], "NOR")[0].feature == NAMES[0]


def test_temperature_is_recovered() -> None:
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 3, (4000, len(GROUPS)))
    p = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    y = [GROUPS[rng.choice(len(GROUPS), p=row)] for row in p]
    assert fit_temperature(true_logits * 2.0, y) == pytest.approx(2.0, rel=0.1)  # over-confident logits x2 -> T = 2


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def dcm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dx") / "patient"
    write_phantom(make_phantom(PhantomConfig(group="DCM", n_frames=4, n_slices=8, seed=2)), folder)
    (folder / "phantom_4d.nii.gz").unlink()
    return folder


def test_diagnose_never_reads_the_group_in_info_cfg(dcm_folder: Path, tmp_path: Path) -> None:
    first = runner.invoke(app, ["diagnose", str(dcm_folder), "--json", str(tmp_path / "a.json")])
    assert first.exit_code == 0, first.output
    info = dcm_folder / "Info.cfg"
    info.write_text(info.read_text().replace("Group: DCM", "Group: HCM"))
    second = runner.invoke(app, ["diagnose", str(dcm_folder), "--json", str(tmp_path / "b.json")])
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a == b and a["group"] == "DCM" and a["schema"] == "opencmr.diagnosis/1"
    assert set(a["probabilities"]) == set(GROUPS) and a["explanation"]
    assert "diagnosis: DCM" in " ".join(second.output.split())


def test_diagnose_refuses_without_body_size(tmp_path: Path) -> None:
    from opencmr.io.nifti import write_study_nifti

    study = write_study_nifti(
        make_phantom(PhantomConfig(n_frames=3, n_slices=6, seed=3)).study, tmp_path / "cine.nii.gz"
    )
    result = runner.invoke(app, ["diagnose", str(study)])  # a bare NIfTI: no height, no weight
    assert result.exit_code == 1 and "needs height and weight" in result.output and "Traceback" not in result.output


def test_diagnose_gives_what_analyze_reports(dcm_folder: Path, tmp_path: Path) -> None:
    """Both segment through opencmr.analysis.segment_for_analysis: same labels, same diagnosis.json."""
    from opencmr.io.nifti import write_study_nifti
    from tests.qc.test_orientation import transposed

    phantom = make_phantom(PhantomConfig(group="HCM", n_frames=5, n_slices=8, seed=4))
    cine = write_study_nifti(phantom.study, tmp_path / "cine.nii.gz")
    sideways = write_study_nifti(transposed(phantom.study), tmp_path / "sideways.nii.gz")  # analyze corrects it
    body = ["--height", "172", "--weight", "80"]
    for study, extra in ((dcm_folder, []), (cine, body), (sideways, body)):
        out = tmp_path / f"analysis_{study.name}"
        analysed = runner.invoke(app, ["analyze", str(study), "-o", str(out), *extra])
        assert analysed.exit_code == 0, analysed.output
        alone = tmp_path / f"{study.name}.json"
        diagnosed = runner.invoke(app, ["diagnose", str(study), "--json", str(alone), *extra])
        assert diagnosed.exit_code == 0, diagnosed.output
        assert json.loads(alone.read_text()) == json.loads((out / "diagnosis.json").read_text()), study
