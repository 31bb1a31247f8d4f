from __future__ import annotations

import json

import pytest

from opencmr.segment.config import SegmentationConfig
from tests.segment.conftest import TINY


def test_dict_round_trip_through_json() -> None:
    data = json.loads(json.dumps(TINY.to_dict()))
    assert data["channels"] == [4, 8, 16] and data["spacing_mm"] == [2.0, 2.0]
    back = SegmentationConfig.from_dict(data)
    assert back == TINY
    assert isinstance(back.patch_size, tuple) and isinstance(back.channels, tuple)
    assert SegmentationConfig.from_dict(SegmentationConfig().to_dict()) == SegmentationConfig()


def test_unknown_setting_is_refused() -> None:
    data = {**TINY.to_dict(), "deep_supervision": True}
    with pytest.raises(ValueError, match=r"unknown segmentation settings \['deep_supervision'\]"):
        SegmentationConfig.from_dict(data)


def test_divisor_and_patch_multiple() -> None:
    assert TINY.divisor == 4
    assert SegmentationConfig().divisor == 16
    with pytest.raises(ValueError, match="multiple of 4"):
        SegmentationConfig(channels=(4, 8, 16), strides=(2, 2), patch_size=(32, 30))
    with pytest.raises(ValueError, match="multiple of 16"):
        SegmentationConfig(patch_size=(136, 144))


def test_other_invalid_settings() -> None:
    with pytest.raises(ValueError, match="one entry fewer"):
        SegmentationConfig(channels=(4, 8, 16), strides=(2,), patch_size=(32, 32))
    with pytest.raises(ValueError, match="spacing_mm"):
        SegmentationConfig(spacing_mm=(0.0, 1.5))
    with pytest.raises(ValueError, match="spacing_mm"):
        SegmentationConfig(spacing_mm=(1.5,))


def test_context_slices_set_the_input_channels_and_old_files_mean_2d() -> None:
    assert TINY.in_channels == 1 and SegmentationConfig(context_slices=2).in_channels == 5
    old = {k: v for k, v in TINY.to_dict().items() if k != "context_slices"}  # a model file from before 2.5D
    assert SegmentationConfig.from_dict(old).context_slices == 0
    with pytest.raises(ValueError, match="context_slices"):
        SegmentationConfig(context_slices=-1)
