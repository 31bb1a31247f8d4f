"""scripts/cv_train.py: fold assignment, the release split, and the pack of prepared frames (synthetic patients)."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from opencmr.phantom import write_phantom
from opencmr.segment.data import find_cases, load_cases
from opencmr.segment.model import save_model
from tests.segment.conftest import TINY, small_phantom, tiny_model

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cv_train.py"


@pytest.fixture(scope="module")
def cv_train():
    spec = importlib.util.spec_from_file_location("cv_train_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def synthetic_groups(sizes: dict[str, int]) -> dict[str, str]:
    groups, n = {}, 0
    for group, size in sizes.items():
        for _ in range(size):
            n += 1
            groups[f"patient{n:03d}"] = group
    return groups


@pytest.mark.parametrize(
    "sizes", [{"NOR": 16, "DCM": 16, "HCM": 16, "MINF": 16, "RV": 16}, {"NOR": 7, "DCM": 3, "HCM": 12, "RV": 1}]
)
def test_assign_folds_spreads_each_group_evenly(cv_train, sizes: dict[str, int]) -> None:
    groups = synthetic_groups(sizes)
    folds = cv_train.assign_folds(groups)
    assert set(folds) == set(groups)
    assert set(folds.values()) <= set(range(cv_train.N_FOLDS)) and cv_train.N_FOLDS == 5
    for group in sizes:
        counts = Counter(folds[p] for p, g in groups.items() if g == group)
        per_fold = [counts.get(k, 0) for k in range(5)]
        assert max(per_fold) - min(per_fold) <= 1, (group, per_fold)
    totals = Counter(folds.values())
    if all(size % 5 == 0 for size in sizes.values()):
        assert set(totals.values()) == {len(groups) // 5}
    assert cv_train.assign_folds(dict(reversed(groups.items()))) == folds  # deterministic, whatever the order
    assert cv_train.assign_folds(groups, seed=1) != folds


def test_assign_folds_of_80_patients_gives_16_per_fold(cv_train) -> None:
    groups = synthetic_groups({"NOR": 16, "DCM": 16, "HCM": 16, "MINF": 16, "RV": 16})
    assert sorted(Counter(cv_train.assign_folds(groups).values()).values()) == [16] * 5


def test_release_split_holds_out_ten_patients_spread_over_the_groups(cv_train) -> None:
    groups = synthetic_groups({"NOR": 16, "DCM": 16, "HCM": 16, "MINF": 16, "RV": 16})
    held = cv_train.release_split(groups)
    assert len(held) == len(set(held)) == 10 and set(held) <= set(groups)
    assert Counter(groups[p] for p in held) == {g: 2 for g in ("NOR", "DCM", "HCM", "MINF", "RV")}
    assert cv_train.release_split(dict(reversed(groups.items()))) == held


@pytest.fixture(scope="module")
def acdc_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pack")
    data = root / "training"
    for i, group in enumerate(("NOR", "DCM", "MINF")):
        write_phantom(small_phantom(seed=i, group=group, n_frames=2), data / f"patient{i + 1:03d}")
    model = save_model(tiny_model(), root / "tiny.pt")
    return data, model


def test_pack_round_trip(cv_train, acdc_like: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    data, model = acdc_like
    out = tmp_path / "sub" / "acdc.pack.xz"
    cv_train.pack(data, out, model)
    assert out.is_file() and out.read_bytes()[:6] == b"\xfd7zXZ\x00"
    assert "3 patients" in capsys.readouterr().out
    cases, groups = cv_train.load_pack(out)
    assert groups == {"patient001": "NOR", "patient002": "DCM", "patient003": "MINF"}
    expected = load_cases(find_cases(data), TINY)
    assert len(cases) == len(expected) >= 6
    for got, want in zip(cases, expected):
        assert (got.patient, got.frame) == (want.patient, want.frame)
        assert got.spacing_mm == pytest.approx(want.spacing_mm)
        assert got.image.dtype == np.float32 and got.image.shape == want.image.shape
        assert np.abs(got.image - want.image).max() <= 0.5 / cv_train.LEVELS + 1e-6  # within 1/127: rounded to 7 bits
        np.testing.assert_array_equal(got.labels, want.labels)
        assert got.labels.any()
