"""The continuous heart model and its ground-truth integrals, checked against closed forms."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from opencmr.labels import DiagnosticGroup
from opencmr.phantom.anatomy import (
    TISSUE_LABELS,
    CycleShape,
    HeartAnatomy,
    Infarct,
    SeptalHypertrophy,
    Tissue,
    half_ellipsoid_volume,
)
from opencmr.phantom.groups import sample_parameters
from opencmr.phantom.truth import Quadrature, grid_volumes, lv_section_radii, section_areas, slab_volumes


def _anatomy(**changes: object) -> HeartAnatomy:
    base = HeartAnatomy(
        lv_axes_mm=(29.0, 26.0, 88.0),
        lv_angle_deg=20.0,
        wall_mm=8.0,
        apex_wall_mm=6.5,
        radial_shortening=0.3,
        long_axis_shortening=0.15,
        rv_offset_mm=18.0,
        rv_angle_deg=10.0,
        rv_axes_mm=(25.0, 50.0, 75.0),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_cycle_shape_is_one_at_ed_zero_at_es_and_periodic() -> None:
    cycle = CycleShape(es_phase=0.35)
    t = np.linspace(0.0, 1.0, 2001)
    v = cycle(t)
    assert v[0] == pytest.approx(1.0) and v[-1] == pytest.approx(1.0)
    assert cycle(0.35) == pytest.approx(0.0)
    assert v.min() >= 0.0 and v.max() <= 1.0
    assert np.all(np.diff(v[t <= 0.35]) <= 1e-12)  # ejection is monotone
    assert np.all(np.diff(v[t >= 0.35]) >= -1e-12)  # filling is monotone
    assert np.abs(np.diff(v)).max() < 0.01  # smooth: no jumps
    with pytest.raises(ValueError):
        CycleShape(es_phase=0.7, atrial_phase=0.6)


def test_half_ellipsoid_formula() -> None:
    a, b, c = 30.0, 25.0, 80.0
    assert half_ellipsoid_volume(a, b, c) == pytest.approx(2 / 3 * math.pi * a * b * c)
    # Slab [-c, -c/2]: pi a b (c/2 - (c^3 - c^3/8) / (3 c^2)) = pi a b c (1/2 - 7/24)
    assert half_ellipsoid_volume(a, b, c, -200.0, -c / 2) == pytest.approx(math.pi * a * b * c * 5 / 24)
    assert half_ellipsoid_volume(a, b, c, 5.0, 10.0) == 0.0


@pytest.mark.parametrize("q", [0.0, 0.6, 1.0])
def test_ray_integration_matches_the_analytic_ellipsoid(q: float) -> None:
    anatomy = _anatomy()
    state = anatomy.state(q)
    a, b, c = state.lv_axes_mm
    base = state.base_z_mm
    whole = slab_volumes(anatomy, state)
    assert whole["lv"] == pytest.approx(half_ellipsoid_volume(a, b, c) / 1000, rel=2e-3)
    z_lo, z_hi = -70.0, -12.0
    slab = slab_volumes(anatomy, state, z_lo, z_hi)
    expected = half_ellipsoid_volume(a, b, c, z_lo - base, z_hi - base) / 1000
    assert slab["lv"] == pytest.approx(expected, rel=2e-3)
    # The epicardium is the ellipsoid (a + w, b + w, c + w_apex) at ED; the cube law conserves its volume.
    epi = half_ellipsoid_volume(29.0 + 8.0, 26.0 + 8.0, 88.0 + 6.5) - half_ellipsoid_volume(29.0, 26.0, 88.0)
    assert whole["myo"] == pytest.approx(epi / 1000, rel=2e-3)


def test_ray_integration_agrees_with_point_classification() -> None:
    anatomy = _anatomy(papillary=False)
    state = anatomy.state(0.7, rv_scale=0.9)
    z_lo, z_hi = -60.0, -14.0  # keep the (moving) base plane outside the slab: no grid-edge error
    exact = slab_volumes(anatomy, state, z_lo, z_hi)
    counted = grid_volumes(anatomy, state, z_lo, z_hi, step_mm=1.0)
    for key in ("lv", "myo", "rv"):
        assert counted[key] == pytest.approx(exact[key], rel=0.015), key


def test_section_areas_match_the_ellipse_area() -> None:
    anatomy = _anatomy()
    state = anatomy.state(0.0)
    a, b, c = state.lv_axes_mm
    z = np.array([-10.0, -40.0, -80.0])
    areas = section_areas(anatomy, state, z)
    expected = math.pi * a * b * (1 - (z / c) ** 2)
    np.testing.assert_allclose(areas["lv"], expected, rtol=1e-3)
    assert np.all(areas["rv"] >= 0)
    assert section_areas(anatomy, state, np.array([5.0]))["lv"][0] == 0.0  # above the base


def test_myocardial_volume_is_conserved_and_the_wall_thickens() -> None:
    anatomy = _anatomy(septal=SeptalHypertrophy(extra_mm=8.0))
    volumes = [slab_volumes(anatomy, anatomy.state(q), quadrature=Quadrature(100, 200))["myo"] for q in (0, 0.5, 1)]
    np.testing.assert_allclose(volumes, volumes[0], rtol=1e-9)
    phi = np.array([math.pi])  # the lateral wall, mid-ventricle
    thickness = []
    for q in (0.0, 1.0):
        state = anatomy.state(q)
        endo, epi = lv_section_radii(anatomy, state, np.array([state.base_z_mm - 40.0]), phi)
        thickness.append(float(epi[0, 0] - endo[0, 0]))
    assert thickness[1] > 1.3 * thickness[0]


def test_infarct_is_thin_and_akinetic() -> None:
    infarct = Infarct(angle_deg=180.0, half_width_deg=50.0, from_level=0.2, wall_mm=4.0)
    anatomy = _anatomy(infarct=infarct)
    u = np.array([-math.sqrt(0.75), 0.0, -0.5])  # lateral, mid-ventricle: inside the scar
    remote = np.array([0.0, math.sqrt(0.75), -0.5])  # anterior: healthy
    ed, es = anatomy.state(0.0), anatomy.state(1.0)
    endo_ed, epi_ed = (np.cbrt(v) for v in anatomy.lv_radii_cubed(*u, ed))
    endo_es, epi_es = (np.cbrt(v) for v in anatomy.lv_radii_cubed(*u, es))
    assert float(epi_ed - endo_ed) == pytest.approx(4.0, abs=0.05)
    assert float(endo_es) == pytest.approx(float(endo_ed), rel=1e-3)  # no inward motion
    assert float(epi_es - endo_es) == pytest.approx(float(epi_ed - endo_ed), rel=1e-3)  # no thickening
    r_ed, _ = anatomy.lv_radii_cubed(*remote, ed)
    r_es, _ = anatomy.lv_radii_cubed(*remote, es)
    assert float(np.cbrt(r_es)) < 0.85 * float(np.cbrt(r_ed))  # the remote wall contracts


def test_classify_gives_anatomical_tissues() -> None:
    anatomy = _anatomy()
    state = anatomy.state(0.0)
    x = np.array([0.0, 0.0, -31.5, 36.0, 0.0, 0.0])
    y = np.zeros_like(x)
    z = np.array([-40.0, -93.0, -40.0, -40.0, -200.0, 20.0])
    tissue = anatomy.classify(x, y, z, state)
    assert tissue[0] == Tissue.LV_BLOOD  # cavity centre
    assert tissue[1] == Tissue.MYOCARDIUM  # apical cap
    assert tissue[2] == Tissue.MYOCARDIUM  # lateral wall
    assert tissue[3] == Tissue.RV_BLOOD  # beyond the septum
    assert tissue[4] == Tissue.NONE  # far below the apex
    assert tissue[5] == Tissue.ATRIAL_BLOOD  # above the base plane
    assert set(TISSUE_LABELS[tissue].tolist()) <= {0, 1, 2, 3}
    assert TISSUE_LABELS[Tissue.PAPILLARY] == 3  # papillary muscles belong to the cavity (ACDC)


def test_rv_is_shorter_than_the_lv() -> None:
    params = sample_parameters(DiagnosticGroup.NOR, np.random.default_rng(0))
    anatomy = params.anatomy
    state = anatomy.state(0.0)
    below_rv_apex = state.base_z_mm - anatomy.rv_axes(state)[2] - 2.0
    areas = section_areas(anatomy, state, np.array([below_rv_apex]))
    assert areas["rv"][0] == 0.0 and areas["lv"][0] > 0.0
