from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
import torch

from opencmr.errors import InputError, OutputError
from opencmr.segment.config import SegmentationConfig
from opencmr.segment.model import FORMAT, default_model_path, load_model, load_weights_widening_input, save_model
from opencmr.segment.network import build_network
from tests.segment.conftest import TINY, tiny_model


def test_save_and_load_give_identical_outputs(tmp_path: Path) -> None:
    model = tiny_model(seed=3)
    path = save_model(model, tmp_path / "sub" / "model.pt")
    assert path == tmp_path / "sub" / "model.pt" and path.is_file()
    loaded = load_model(path)
    assert loaded.config == TINY and loaded.name == "tiny-3" and not loaded.network.training
    x = torch.rand(3, 1, 40, 36, generator=torch.Generator().manual_seed(0))
    expected = model.forward_fn()(x)
    assert expected.shape == (3, 4, 40, 36)
    torch.testing.assert_close(loaded.forward_fn()(x), expected, rtol=0, atol=0)
    assert not torch.allclose(tiny_model(seed=4).forward_fn()(x), expected)  # a different network differs
    with pytest.raises(OutputError, match="already exists"):
        save_model(model, path)
    save_model(tiny_model(seed=4), path, overwrite=True)
    assert not torch.allclose(load_model(path).forward_fn()(x), expected)


def test_model_file_is_plain_tensors_and_strings(tmp_path: Path) -> None:
    path = save_model(tiny_model(), tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)  # no arbitrary objects inside
    assert payload["format"] == FORMAT and payload["config"] == TINY.to_dict()
    assert all(v.dtype == torch.float32 or not v.is_floating_point() for v in payload["state_dict"].values())


def assert_input_error(path: Path, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        load_model(path)
    assert info.value.path == str(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unusable_files_raise_input_error_naming_the_path(tmp_path: Path) -> None:
    assert_input_error(tmp_path / "absent.pt", "not found")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a model\xff" * 100)
    assert_input_error(garbage, "not a readable opencmr model file")
    evil = tmp_path / "pickle.pt"
    evil.write_bytes(pickle.dumps(Path("/etc/passwd")))  # arbitrary objects are never unpickled
    assert_input_error(evil, "not a readable opencmr model file")
    other = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    assert_input_error(other, "is not an opencmr segmentation model file")
    assert_input_error(tmp_path, "not found")  # a folder


def test_inconsistent_and_newer_model_files(tmp_path: Path) -> None:
    path = save_model(tiny_model(), tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    wrong = tmp_path / "wrong.pt"
    torch.save({**payload, "config": {**payload["config"], "channels": [8, 16, 32]}}, wrong)
    assert_input_error(wrong, "inconsistent")
    unknown = tmp_path / "unknown.pt"
    torch.save({**payload, "config": {**payload["config"], "new_setting": 1}}, unknown)
    assert_input_error(unknown, "inconsistent: unknown segmentation settings")
    newer = tmp_path / "newer.pt"
    torch.save({**payload, "format_version": 99}, newer)
    assert_input_error(newer, "newer opencmr")


def test_bundled_model_loads() -> None:
    path = default_model_path()
    assert path.name == "acdc_unet.pt" and path.parent.name == "weights"
    assert path.is_file(), "the release weights are part of the package"
    model = load_model()
    assert isinstance(model.config, SegmentationConfig) and model.config.num_classes == 4
    x = torch.zeros(1, model.config.in_channels, *model.config.patch_size)
    assert model.forward_fn()(x).shape == (1, 4, *model.config.patch_size)


def test_widening_a_2d_model_to_25d_keeps_its_outputs() -> None:
    """A 2.5D network started from 2D weights computes what the 2D network did, whatever the neighbours hold."""
    flat = tiny_model(seed=5)
    config = dataclasses.replace(TINY, context_slices=1)
    wide = build_network(config).eval()
    load_weights_widening_input(wide, flat.network.state_dict())
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    neighbours = torch.rand(3, 2, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = flat.network(x)
        got = wide(torch.cat([neighbours[:, :1], x, neighbours[:, 1:]], 1))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    other = build_network(dataclasses.replace(TINY, channels=(4, 8, 32))).eval()
    with pytest.raises(ValueError, match="do not fit"):
        load_weights_widening_input(other, flat.network.state_dict())
    with pytest.raises(ValueError, match="another architecture"):
        load_weights_widening_input(build_network(dataclasses.replace(TINY, num_res_units=2)), flat.network.state_dict())
