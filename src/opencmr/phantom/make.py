"""Configuration and assembly of a phantom study: :class:`PhantomConfig` -> :func:`make_phantom` -> :class:`Phantom`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from opencmr.io.study import CineStudy, Geometry, LabelMap, StudyMetadata
from opencmr.labels import DiagnosticGroup
from opencmr.phantom.anatomy import HeartAnatomy, HeartState
from opencmr.phantom.groups import PhantomParameters, sample_parameters
from opencmr.phantom.motion import solve_motion
from opencmr.phantom.render import StackGrid, coil_sensitivity, place_heart, plan_stack, render_cine, sample_contrast
from opencmr.phantom.truth import PhantomTruth, compute_truth

__all__ = ["Phantom", "PhantomConfig", "make_phantom"]

_GROUP_INDEX = {group: i for i, group in enumerate(DiagnosticGroup)}


@dataclass(frozen=True)
class PhantomConfig:
    """What to simulate: patient group, acquisition and image realism.

    Parameters
    ----------
    group : DiagnosticGroup or str
        ACDC diagnostic group (``"NOR"``, ``"DCM"``, ``"HCM"``, ``"MINF"``, ``"RV"``).
    n_frames : int
        Cardiac phases over one RR interval (frame 0 is ED, at the R wave).
    n_slices : int
        Short-axis slices, from just above the ED base towards the apex
        (slice 0 is the most basal).
    matrix : tuple of int
        ``(rows, cols)``. The default, 232 x 204 pixels of 1.6 mm (371 x 326 mm),
        shows the whole chest like the ACDC studies (median field of view
        370 x 325 mm).
    pixel_spacing_mm : float
        In-plane spacing (square pixels).
    slice_thickness_mm, slice_spacing_mm : float
        Thickness of each slice and distance between slice centres (the
        default 8 mm / 10 mm leaves a 2 mm gap).
    rr_interval_ms : float
        RR interval; the heart rate is ``60000 / rr_interval_ms``.
    noise_level : float
        Standard deviation of the complex Gaussian noise in the image, as a
        fraction of the blood signal (magnitude images are Rician; ACDC air
        background gives 0.024, 0.012--0.037 over 80 patients).
    bias_field_strength : float
        Strength of the seeded smooth variation of the coil sensitivity
        (0 for none).
    psf_fwhm_mm : float
        Full width at half maximum of the in-plane point-spread function
        (Gaussian; 0 for none): cine is acquired at a coarser resolution than
        the reconstructed pixels, so edges are blurred and the noise is
        correlated between neighbouring pixels. ACDC (80 patients at ED):
        endocardial edge width 3.7 mm (10th--90th percentile 3.0--4.2),
        measured as the blood--myocardium contrast over the steepest
        gradient, and a correlation of 0.65 (0.54--0.73) between neighbouring
        pixels of the fine texture of the blood pool; the default, 2.2 mm,
        gives 3.2 mm and 0.68.
    blood_signal : float
        Raw signal of blood at the heart centre (about 1200--2500 for a
        12-bit scanner image; varied by +-10 % per seed).
    max_raw_value : int
        Stored raw values are integers in ``0..max_raw_value``.
    orientation_jitter_deg : float
        Seeded perturbation of the double-oblique short-axis orientation.
    height_cm, weight_kg : float, optional
        Patient size (sampled from the sex when not given).
    sex : str, optional
        ``"M"`` or ``"F"`` (sampled when not given).
    seed : int
        Seed of every random choice; equal configurations give identical phantoms.
    inplane_samples, through_plane_samples : int
        Supersampling per voxel for partial-volume effects.
    """

    group: DiagnosticGroup | str = DiagnosticGroup.NOR
    n_frames: int = 20
    n_slices: int = 10
    matrix: tuple[int, int] = (232, 204)
    pixel_spacing_mm: float = 1.6
    slice_thickness_mm: float = 8.0
    slice_spacing_mm: float = 10.0
    rr_interval_ms: float = 1000.0
    noise_level: float = 0.03
    bias_field_strength: float = 0.3
    psf_fwhm_mm: float = 2.2
    blood_signal: float = 1800.0
    max_raw_value: int = 4095
    orientation_jitter_deg: float = 10.0
    height_cm: float | None = None
    weight_kg: float | None = None
    sex: str | None = None
    seed: int = 0
    inplane_samples: int = 3
    through_plane_samples: int = 5

    def __post_init__(self) -> None:
        group = self.group if isinstance(self.group, DiagnosticGroup) else DiagnosticGroup.parse(str(self.group))
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "matrix", tuple(int(n) for n in self.matrix))
        if self.n_frames < 2 or self.n_slices < 1:
            raise ValueError(f"need at least 2 frames and 1 slice, got {self.n_frames} and {self.n_slices}")
        if len(self.matrix) != 2 or min(self.matrix) < 16:
            raise ValueError(f"matrix must be (rows, cols) of at least 16, got {self.matrix}")
        positive = ("pixel_spacing_mm", "slice_thickness_mm", "slice_spacing_mm", "rr_interval_ms", "blood_signal")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if min(self.noise_level, self.bias_field_strength, self.psf_fwhm_mm) < 0:
            raise ValueError("noise_level, bias_field_strength and psf_fwhm_mm must be >= 0")
        if self.inplane_samples < 1 or self.through_plane_samples < 1:
            raise ValueError("supersampling factors must be >= 1")
        if self.sex is not None and str(self.sex).upper()[:1] not in ("M", "F"):
            raise ValueError(f"sex must be 'M' or 'F', got {self.sex!r}")

    @property
    def heart_rate_bpm(self) -> float:
        """Heart rate implied by the RR interval."""
        return 60000.0 / self.rr_interval_ms

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dictionary."""
        out = asdict(self)
        out["group"] = self.group.value  # type: ignore[union-attr]
        out["matrix"] = list(self.matrix)
        return out


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic cine study and its ground truth.

    Parameters
    ----------
    config : PhantomConfig
    study : CineStudy
        Raw-like integral float32 image, labels of every frame, metadata
        (group, ED/ES, height, weight, sex, heart rate, patient ID).
    truth : PhantomTruth
        Volumes, function, mass and wall thickness of the continuous model.
    parameters : PhantomParameters
        The sampled anatomy and function targets.
    anatomy : HeartAnatomy
        The anatomy with its motion solved.
    states : tuple of HeartState
        The heart at each frame.
    grid : StackGrid
        The imaging grid (affine and slice heights in the heart frame).
    """

    config: PhantomConfig
    study: CineStudy
    truth: PhantomTruth
    parameters: PhantomParameters
    anatomy: HeartAnatomy
    states: tuple[HeartState, ...]
    grid: StackGrid


def _acquire(signal: np.ndarray, sigma: float, psf_fwhm_px: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude image of ``signal`` (``(..., rows, cols)``) with complex noise and an in-plane Gaussian PSF.

    The noise is added before the PSF (as in k-space) and scaled so that its
    standard deviation in the image is ``sigma``; the magnitude of the
    complex image is Rician.

    References
    ----------
    H. Gudbjartsson, S. Patz, Magn. Reson. Med. 34(6), 1995, doi:10.1002/mrm.1910340618.
    """
    blur_sigma = psf_fwhm_px / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    axes_sigma = (0.0,) * (signal.ndim - 2) + (blur_sigma, blur_sigma)

    def blur(image: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(image, axes_sigma, mode="nearest") if blur_sigma > 0 else image

    if sigma <= 0:
        return blur(signal)
    impulse = np.zeros((33, 33), dtype=np.float64)
    impulse[16, 16] = 1.0
    gain = float(np.sqrt((ndimage.gaussian_filter(impulse, blur_sigma) ** 2).sum())) if blur_sigma > 0 else 1.0
    scale = np.float32(sigma / gain)
    real = blur(signal + scale * rng.standard_normal(signal.shape, dtype=np.float32))
    imag = blur(scale * rng.standard_normal(signal.shape, dtype=np.float32))
    return np.sqrt(real * real + imag * imag)


def make_phantom(config: PhantomConfig | None = None) -> Phantom:
    """Simulate a short-axis cine study with known ground truth.

    Parameters
    ----------
    config : PhantomConfig, optional
        Defaults to ``PhantomConfig()`` (a normal heart, 20 frames, 10 slices,
        232 x 204 at 1.6 mm).

    Returns
    -------
    Phantom

    Examples
    --------
    >>> from opencmr.phantom import PhantomConfig, make_phantom
    >>> ph = make_phantom(PhantomConfig(group="DCM", n_frames=8, matrix=(64, 64), pixel_spacing_mm=3.2))
    >>> ph.study.image.shape
    (8, 10, 64, 64)
    >>> ph.truth.lv_ef_percent < 35
    True
    """
    cfg = config or PhantomConfig()
    group = cfg.group
    assert isinstance(group, DiagnosticGroup)
    anatomy_rng, geometry_rng, contrast_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([cfg.seed, _GROUP_INDEX[group]]).spawn(4)
    )
    params = sample_parameters(
        group, anatomy_rng, height_cm=cfg.height_cm, weight_kg=cfg.weight_kg, sex=cfg.sex
    )
    phases = np.arange(cfg.n_frames) / cfg.n_frames
    times = tuple(float(t) for t in phases * cfg.rr_interval_ms)
    anatomy, states = solve_motion(
        params.anatomy,
        lv_edv_ml=params.lv_edv_ml,
        lv_esv_ml=params.lv_edv_ml * (1.0 - params.lv_ef),
        rv_edv_ml=params.rv_edv_ml,
        rv_esv_ml=params.rv_edv_ml * (1.0 - params.rv_ef),
        cycle=params.cycle,
        phases=phases,
    )
    placement = place_heart(geometry_rng, anatomy.lv_axes_mm[2], cfg.orientation_jitter_deg)
    grid = plan_stack(
        placement,
        geometry_rng,
        n_slices=cfg.n_slices,
        matrix=cfg.matrix,  # type: ignore[arg-type]
        pixel_spacing_mm=cfg.pixel_spacing_mm,
        slice_spacing_mm=cfg.slice_spacing_mm,
        slice_thickness_mm=cfg.slice_thickness_mm,
    )
    truth = compute_truth(anatomy, states, grid.slice_z_mm, cfg.slice_spacing_mm, times)

    contrast = sample_contrast(contrast_rng, cfg.blood_signal)
    signal, label_data = render_cine(
        anatomy,
        states,
        placement,
        grid,
        contrast,
        inplane_samples=cfg.inplane_samples,
        through_plane_samples=cfg.through_plane_samples,
    )
    heart_mid = placement.origin - 0.5 * anatomy.lv_axes_mm[2] * placement.axes[:, 2]
    if cfg.bias_field_strength > 0:
        signal *= coil_sensitivity(grid, placement, contrast_rng, cfg.bias_field_strength, heart_mid)
    signal *= np.float32(contrast.blood)
    signal = _acquire(signal, cfg.noise_level * contrast.blood, cfg.psf_fwhm_mm / cfg.pixel_spacing_mm, noise_rng)
    image = np.clip(np.rint(signal), 0, cfg.max_raw_value).astype(np.float32)

    geometry = Geometry(grid.affine, grid.shape, slice_thickness_mm=cfg.slice_thickness_mm)
    frames = tuple(range(cfg.n_frames))
    metadata = StudyMetadata(
        source_format="phantom",
        patient_id=f"PHANTOM-{group.value}-{cfg.seed}",
        patient_name=f"Phantom^{group.value}{cfg.seed}",
        series_description="cine SAX bSSFP (opencmr phantom)",
        height_cm=params.height_cm,
        weight_kg=params.weight_kg,
        sex=params.sex,
        heart_rate_bpm=cfg.heart_rate_bpm,
        ed_frame=truth.ed_frame,
        es_frame=truth.es_frame,
        group=group,
        n_frames_acquired=cfg.n_frames,
        notes=(f"synthetic opencmr phantom ({group.value}, seed {cfg.seed}); ground truth in truth.json",),
    )
    study = CineStudy(
        image,
        geometry,
        metadata,
        frame_times_ms=times,
        labels=LabelMap(label_data, geometry, frames),
    )
    return Phantom(
        config=cfg,
        study=study,
        truth=truth,
        parameters=params,
        anatomy=anatomy,
        states=tuple(states),
        grid=grid,
    )
