"""The network: MONAI's residual U-Net in 2D (Kerfoot et al. 2018)."""

from __future__ import annotations

from monai.networks.nets import UNet
from torch import nn

from opencmr.segment.config import SegmentationConfig

__all__ = ["build_network"]


def build_network(config: SegmentationConfig) -> nn.Module:
    """A 2D :class:`monai.networks.nets.UNet` (``config.in_channels`` inputs, ``num_classes`` logits).

    References
    ----------
    E. Kerfoot et al., "Left-ventricle quantification using residual U-Net",
    STACOM 2018, LNCS 11395, doi:10.1007/978-3-030-12029-0_40.
    """
    return UNet(
        spatial_dims=2,
        in_channels=config.in_channels,
        out_channels=config.num_classes,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
        norm=config.norm,
        dropout=config.dropout,
    )
