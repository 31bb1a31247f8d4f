from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402

from opencmr.errors import InputError, OutputError  # noqa: E402
from opencmr.io.study import CineStudy  # noqa: E402
from opencmr.segment.inference import segment_study  # noqa: E402
from opencmr.segment.onnx import export_onnx, load_onnx_model  # noqa: E402
from tests.segment.conftest import TINY, tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(tiny_model(seed=2), tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_onnx_logits_match_torch_on_other_sizes(exported: Path) -> None:
    model = tiny_model(seed=2)
    loaded = load_onnx_model(exported, threads=1)
    assert loaded.config == TINY and loaded.info == {"name": "tiny-2"} and loaded.name == "tiny-2 (onnx)"
    for shape in ((3, 1, 48, 40), (1, 1, 32, 32), (2, 1, 20, 64)):
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        expected = model.forward_fn()(x)
        got = loaded.forward_fn()(x)
        assert got.shape == expected.shape == (shape[0], 4, *shape[2:])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_onnx_model_segments_like_the_torch_model(exported: Path, study: CineStudy) -> None:
    ours = segment_study(study, load_onnx_model(exported, threads=1), frames=[0], tta=False)
    reference = segment_study(study, tiny_model(seed=2), frames=[0], tta=False)
    assert np.mean(ours.data == reference.data) > 0.999
    np.testing.assert_array_equal(ours.geometry.affine, study.geometry.affine)


def test_metadata_holds_the_configuration(exported: Path) -> None:
    meta = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    assert json.loads(meta["opencmr_config"]) == TINY.to_dict()
    with pytest.raises(OutputError, match="already exists"):
        export_onnx(tiny_model(), exported)


def test_onnx_without_opencmr_metadata_or_unreadable(tmp_path: Path, exported: Path) -> None:
    proto = onnx.load(str(exported))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(InputError, match="no opencmr configuration") as info:
        load_onnx_model(bare)
    assert info.value.path == str(bare)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx file" * 10)
    with pytest.raises(InputError, match="not a readable ONNX model"):
        load_onnx_model(garbage)
    with pytest.raises(InputError, match="not found"):
        load_onnx_model(tmp_path / "absent.onnx")


def test_onnx_from_a_newer_opencmr_is_an_input_error(tmp_path: Path, exported: Path) -> None:
    proto = onnx.load(str(exported))
    for entry in proto.metadata_props:
        if entry.key == "opencmr_config":
            entry.value = json.dumps({**json.loads(entry.value), "new_setting": 1})
    newer = tmp_path / "newer.onnx"
    onnx.save(proto, str(newer))
    with pytest.raises(InputError, match="newer"):
        load_onnx_model(newer)


def test_a_25d_model_exports_with_its_input_channels(tmp_path: Path, study: CineStudy) -> None:
    import dataclasses

    model = tiny_model(seed=4, config=dataclasses.replace(TINY, context_slices=1))
    loaded = load_onnx_model(export_onnx(model, tmp_path / "wide.onnx"), threads=1)
    assert loaded.config.context_slices == 1
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.forward_fn()(x), model.forward_fn()(x), atol=1e-4, rtol=0)
    ours = segment_study(study, loaded, frames=[0], tta=False)
    assert np.mean(ours.data == segment_study(study, model, frames=[0], tta=False).data) > 0.999
