"""Solve the heart's motion so that its volumes follow prescribed curves.

Given ED geometry and target volumes, :func:`solve_motion` finds

1. the in-plane endocardial shortening at end-systole that gives the target
   LV end-systolic volume (with an akinetic infarct the remote myocardium
   must contract more, so this is solved numerically for every group);
2. for every frame, the contraction ``q`` whose LV volume equals
   ``ESV + (EDV - ESV) * cycle(phase)``;
3. for every frame, the RV scale whose RV volume (RV ellipsoid minus the LV
   epicardium at that instant) equals the RV target on the same curve.

Volumes here are of the whole model (not restricted to any slab) on a coarse
direction quadrature; the reported ground truth is recomputed afterwards on
a fine one (:mod:`opencmr.phantom.truth`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from opencmr.phantom.anatomy import CycleShape, HeartAnatomy, HeartState, rotate_xy
from opencmr.phantom.truth import Quadrature

__all__ = ["solve_motion"]

_COARSE = Quadrature(n_mu=48, n_phi=96)


def _lv_volume_ml(anatomy: HeartAnatomy, state: HeartState, nodes: tuple) -> float:
    ux, uy, uz, _, w = nodes
    endo3, _ = anatomy.lv_radii_cubed(ux, uy, uz, state)
    return float(endo3.sum() * w / 3.0 / 1000.0)


def _rv_volumes_ml(anatomy: HeartAnatomy, states: Sequence[HeartState], scales: np.ndarray, nodes: tuple) -> np.ndarray:
    """Whole RV volume of every state with its in-plane RV scale replaced by ``scales``."""
    ux, uy, uz, _, w = nodes
    ra0, rb0, _ = anatomy.rv_axes_mm
    ra, rb = ra0 * scales[:, None], rb0 * scales[:, None]
    rc = np.array([s.rv_long_mm for s in states])[:, None]
    r_epi = np.stack([np.cbrt(anatomy.lv_radii_cubed(ux, uy, uz, s)[1]) for s in states])
    ang = np.deg2rad(anatomy.rv_angle_deg)
    cx, cy, _ = anatomy.rv_centre(states[0])
    dx, dy = rotate_xy(np.asarray(-cx), np.asarray(-cy), ang)
    vx, vy = rotate_xy(ux, uy, ang)
    vx = vx - anatomy.rv_tilt * uz  # the sheared (oblique) RV axis; both centres lie on the base plane
    qa = (vx / ra) ** 2 + (vy / rb) ** 2 + (uz / rc) ** 2
    qb = dx * vx / ra**2 + dy * vy / rb**2
    qc = (dx / ra) ** 2 + (dy / rb) ** 2 - 1.0
    disc = qb * qb - qa * qc
    root = np.sqrt(np.maximum(disc, 0.0))
    t1 = np.maximum((-qb - root) / qa, 0.0)
    t2 = np.minimum((-qb + root) / qa, r_epi)
    overlap = np.where((disc > 0) & (t2 > t1), (t2**3 - t1**3) / 3.0, 0.0).sum(axis=1) * w
    ellipsoid = 2.0 / 3.0 * np.pi * ra[:, 0] * rb[:, 0] * rc[:, 0]
    return (ellipsoid - overlap) / 1000.0


def _bisect(f, lo: float, hi: float, target: float, iterations: int = 40) -> float:
    """Root of the decreasing function ``f(x) = target`` on ``[lo, hi]`` (clamped to the ends)."""
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def solve_motion(
    anatomy: HeartAnatomy,
    *,
    lv_edv_ml: float,
    lv_esv_ml: float,
    rv_edv_ml: float,
    rv_esv_ml: float,
    cycle: CycleShape,
    phases: Sequence[float],
    quadrature: Quadrature = _COARSE,
) -> tuple[HeartAnatomy, list[HeartState]]:
    """Find the contraction and RV scale of every frame.

    Parameters
    ----------
    anatomy : HeartAnatomy
        ED geometry whose LV cavity volume is ``lv_edv_ml``.
    lv_edv_ml, lv_esv_ml, rv_edv_ml, rv_esv_ml : float
        Target volumes of the whole model.
    cycle : CycleShape
        Normalised volume curve (1 at ED, 0 at ES).
    phases : sequence of float
        Phase (fraction of the RR interval) of each frame.
    quadrature : Quadrature
        Directions used by the solver.

    Returns
    -------
    (HeartAnatomy, list of HeartState)
        The anatomy with its ``radial_shortening`` solved, and the state of
        each frame.
    """
    nodes = quadrature.nodes()

    def esv_of(shortening: float) -> float:
        trial = replace(anatomy, radial_shortening=shortening)
        return _lv_volume_ml(trial, trial.state(1.0), nodes)

    anatomy = replace(anatomy, radial_shortening=_bisect(esv_of, 0.0, 0.85, lv_esv_ml, 30))

    # Contraction of each frame, from V(q) tabulated on a grid (smooth and decreasing).
    q_grid = np.linspace(0.0, 1.1, 45)
    v_grid = np.array([_lv_volume_ml(anatomy, anatomy.state(q), nodes) for q in q_grid])
    level = cycle(np.asarray(phases, dtype=np.float64))
    lv_targets = lv_esv_ml + (lv_edv_ml - lv_esv_ml) * level
    contraction = np.interp(lv_targets, v_grid[::-1], q_grid[::-1])
    states = [anatomy.state(q) for q in contraction]

    # RV scale of each frame: bisection on all frames at once (RV volume increases with the scale).
    rv_targets = rv_esv_ml + (rv_edv_ml - rv_esv_ml) * level
    lo, hi = np.full(len(states), 0.2), np.full(len(states), 3.0)
    for _ in range(28):
        mid = 0.5 * (lo + hi)
        small = _rv_volumes_ml(anatomy, states, mid, nodes) < rv_targets
        lo, hi = np.where(small, mid, lo), np.where(small, hi, mid)
    scales = 0.5 * (lo + hi)
    return anatomy, [replace(s, rv_scale=float(k)) for s, k in zip(states, scales, strict=True)]
