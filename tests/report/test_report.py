"""``report.html`` of studies analysed end to end from real files: contents, self-containment, the failure path.

The HTML is parsed with :mod:`html.parser` (what a browser would see), not
searched as a string where structure matters; the last test opens it in a
real headless Chromium when one is installed.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from opencmr.analysis import AnalysisOptions, AnalysisResult, analyze_study
from opencmr.errors import OutputError
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom
from opencmr.report import DISCLAIMER, render_report, write_report

N_SLICES = 6
CHROMIUM = "/usr/bin/chromium"
RENDER_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "render_report.py"


class _Page(HTMLParser):
    """Images, table rows (by ``data-key``), every tag's attributes and the visible text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str | None]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: dict[str, list[str]] = {}
        self.text: list[str] = []
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "img":
            self.images.append(attributes)
        elif tag == "tr" and attributes.get("data-key"):
            self._row = attributes["data-key"]
            self.rows[self._row] = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self.rows[self._row].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> AnalysisResult:
    """A DCM phantom written as a DICOM study (patient ID, name, series description), analysed with height and weight."""
    root = tmp_path_factory.mktemp("study")
    phantom = make_phantom(PhantomConfig(group="DCM", n_frames=3, n_slices=N_SLICES, seed=1))
    dicom = write_phantom(phantom, root / "phantom", dicom=True)["dicom"]
    options = AnalysisOptions(height_cm=175.0, weight_kg=70.0, heart_rate_bpm=70.0, tta=False)
    return analyze_study(dicom, tmp_path_factory.mktemp("out"), options)


@pytest.fixture(scope="module")
def report(analysed: AnalysisResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(analysed, tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture(scope="module")
def page(report: Path) -> _Page:
    return _parse(report.read_text(encoding="utf-8"))


def test_identifiers_appear_as_the_input_carries_them(analysed: AnalysisResult, page: _Page) -> None:
    meta = analysed.study.metadata
    assert meta.patient_id and meta.patient_name and meta.series_description and meta.study_uid  # the DICOM has them
    for value in (meta.patient_id, meta.patient_name, meta.series_description, meta.study_uid, str(meta.source)):
        assert value in page.visible
    # the study date as the DICOM carries it (StudyDate, shown as YYYY-MM-DD)
    import pydicom

    first = next(p for p in Path(meta.source).rglob("*") if p.is_file() and pydicom.misc.is_dicom(p))
    date = pydicom.dcmread(first).StudyDate
    assert meta.study_date == f"{date[:4]}-{date[4:6]}-{date[6:]}"
    assert f"Study date {meta.study_date}" in page.visible


def test_nothing_is_invented_where_the_input_has_no_identifiers(tmp_path: Path) -> None:
    """A NIfTI cine carries no study date or patient name: the report says "not recorded"."""
    folder = tmp_path / "nifti"
    write_phantom(make_phantom(PhantomConfig(group="NOR", n_frames=2, n_slices=4, seed=1)), folder)
    result = analyze_study(folder / "phantom_4d.nii.gz", tmp_path / "out", AnalysisOptions(tta=False, orientation="off"))
    visible = _parse((tmp_path / "out" / "report.html").read_text(encoding="utf-8")).visible
    assert result.study.metadata.study_date is None and "Study date not recorded" in visible


def test_one_overlay_per_slice_per_phase(analysed: AnalysisResult, page: _Page) -> None:
    phases = analysed.measurements.phases
    overlays = [image for image in page.images if image.get("data-phase")]
    for name, frame in (("ED", phases.ed_frame), ("ES", phases.es_frame)):
        shown = [image for image in overlays if image["data-phase"] == name]
        assert sorted(int(image["data-slice"]) for image in shown) == list(range(N_SLICES))
        assert {image["data-frame"] for image in shown} == {str(frame)}
    assert len(overlays) == 2 * N_SLICES
    for image in page.images:
        src = image["src"] or ""
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # the volume curve (3 frames) and the two bull's-eyes are there too
    assert len(page.images) == 2 * N_SLICES + 3


def test_every_measurement_appears_with_its_unit_and_flag(analysed: AnalysisResult, page: _Page) -> None:
    values = analysed.measurements.values
    assert set(page.rows) == set(values)
    units = {
        "lv_edv_ml": "mL",
        "lv_ef_percent": "%",
        "lv_mass_g_m2": "g/m²",
        "lv_co_l_min": "L/min",
        "lv_co_l_min_m2": "L/min/m²",
        "max_wall_thickness_mm": "mm",
        "bsa_m2": "m²",
        "lv_esv_ml_m2": "mL/m²",
    }
    for key, unit in units.items():
        _name, shown_key, value, shown_unit, *_ = page.rows[key]
        assert (shown_key, shown_unit) == (key, unit)
        assert float(value) == pytest.approx(values[key], abs=0.0501)  # one or two decimals shown
    for key in values:
        assert page.rows[key][3], f"{key} has no unit"
    flags = {flag.index: flag for flag in analysed.measurements.flags}
    assert flags["lv_ef_percent"].status.value == "low"  # a dilated, poorly contracting phantom
    ef, flag = page.rows["lv_ef_percent"], flags["lv_ef_percent"]
    assert (
        ef[4] == f"{flag.lower:.1f}–{flag.upper:.1f}"
        and ef[5].startswith("low")
        and flags["lv_ef_percent"].text in ef[5]
    )


def test_qc_diagnosis_models_and_disclaimer(analysed: AnalysisResult, page: _Page, report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    verdict = analysed.qc.verdict.value
    assert f'data-verdict="{verdict}"' in text
    for reason in analysed.qc.reasons:
        assert reason in page.visible
    group = analysed.diagnosis.group
    assert group is not None and f'data-group="{group}"' in text
    for sentence in analysed.diagnosis.explanation:
        assert sentence in page.visible
    assert "Expected Dice (mean)" in page.visible
    for finding in analysed.qc.findings:
        assert finding in page.visible
    if analysed.qc.estimated_dice is not None:  # as qc.json has it (rounded to 4 decimals there)
        shown = analysed.qc.to_dict()["estimated_dice"]
        assert f"Estimated Dice (calibrated) {shown:.3f}" in page.visible
    from opencmr.segment.model import load_segmenter

    assert load_segmenter().name in page.visible and "opencmr-acdc-diagnosis-v2" in page.visible
    assert page.visible.count(DISCLAIMER) == 2  # top and bottom


def test_the_report_is_self_contained_and_small(page: _Page, report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"""src\s*=\s*["']?https?:""", text, re.IGNORECASE)
    assert "<link" not in text.lower() and "<script" not in text.lower() and "@import" not in text
    assert not re.search(r"url\(\s*['\"]?(?!data:)", text)
    for tag, attributes in page.tags:
        for name in ("src", "href", "srcset", "poster"):
            value = attributes.get(name)
            assert value is None or value.startswith(("data:", "#")), (tag, name, value[:60])
    assert report.stat().st_size < 2_000_000  # 6 slices; 10 slices stays well under 5 MB


def test_text_from_the_input_is_escaped(analysed: AnalysisResult) -> None:
    meta = dataclasses.replace(analysed.study.metadata, patient_name="<script>alert(1)</script> & O'Brien")
    result = dataclasses.replace(analysed, study=dataclasses.replace(analysed.study, metadata=meta))
    text = render_report(result)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; O&#39;Brien" in text
    assert "<script>alert(1)</script> & O'Brien" in _parse(text).visible


def test_an_existing_report_is_not_overwritten(analysed: AnalysisResult, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("keep me")
    with pytest.raises(OutputError, match="already exists"):
        write_report(analysed, target)
    assert target.read_text() == "keep me"
    assert write_report(analysed, target, overwrite=True) == target
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_study_with_nothing_measurable_still_gets_a_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(100, 30, (96, 96, 4, 2)).clip(0).astype(np.float32)
    path = tmp_path / "noise.nii.gz"
    nib.save(nib.Nifti1Image(image, np.diag([1.5, 1.5, 8.0, 1.0])), path)
    result = analyze_study(path, tmp_path / "out", AnalysisOptions(tta=False))
    assert result.measurements is None and result.qc.verdict.value == "fail"
    report = tmp_path / "out" / "report.html"  # analyze writes the report on this path too
    assert result.files["report"] == [report]
    text = report.read_text(encoding="utf-8")
    page = _parse(text)
    assert 'data-verdict="fail"' in text and "Nothing could be measured" in page.visible
    assert result.qc.reasons and all(reason in page.visible for reason in result.qc.reasons)
    overlays = [image for image in page.images if image.get("data-phase")]
    assert len(overlays) == 4 and len(page.images) == 4  # one frame's slices; no curve, no bull's-eye
    assert not page.rows and "Study date not recorded" in page.visible and "Patient ID not recorded" in page.visible
    assert DISCLAIMER in page.visible


def _render_module():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; its browser download is not needed)")
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    spec = importlib.util.spec_from_file_location("render_report_under_test", RENDER_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_report_renders_in_chromium_without_errors(report: Path, tmp_path: Path) -> None:
    render = _render_module()
    png = tmp_path / "report.png"
    problems = render.render(report, png, width=1000, chromium=CHROMIUM)
    assert problems == []
    from PIL import Image

    with Image.open(png) as screenshot:
        pixels = np.asarray(screenshot.convert("L"), dtype=np.float32)
    assert pixels.shape[1] == 1000 and pixels.shape[0] > 2000  # a long page, not an empty one
    assert pixels.std() > 20  # not blank: text, tables and images
    dark = (pixels < 60).mean(axis=1)  # rows holding black overlay images
    assert (dark > 0.3).sum() > 100
