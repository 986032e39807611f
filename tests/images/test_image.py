"""Images: versions share base layers; a VM image is one file."""

from __future__ import annotations

import pytest

from fleet_sim.images.image import ContainerImage, Layer, VMImage


def test_layers_are_content_addressed():
    assert Layer.of("x", 1).digest == Layer.of("x", 1).digest != Layer.of("y", 1).digest
    assert Layer.of("x", 1).digest.startswith("sha256:")


def test_a_new_top_layer_keeps_the_base_layers():
    v1 = ContainerImage.build("web", "v1", (200, 50, 30))
    v2 = v1.next_version("v2", "top-layer")
    assert v2.layers[:2] == v1.layers[:2]
    assert v2.layers[2] != v1.layers[2]
    assert v2.size_mb == v1.size_mb == 280


def test_a_rebuilt_image_shares_no_layer():
    v1 = ContainerImage.build("web", "v1", (200, 30))
    v2 = v1.next_version("v2", "whole-image")
    assert not {layer.digest for layer in v1.layers} & {layer.digest for layer in v2.layers}


def test_a_vm_image_is_one_file_and_every_version_is_new():
    v1 = VMImage("web", "v1", 2000)
    v2 = v1.next_version("v2", "top-layer")
    assert len(v1.layers) == 1
    assert v1.layers[0].size_mb == 2000
    assert v1.layers[0].digest != v2.layers[0].digest


def test_unknown_change_and_empty_image_are_rejected():
    with pytest.raises(ValueError, match="valid: top-layer, whole-image"):
        ContainerImage.build("web", "v1", (1,)).next_version("v2", "base")
    with pytest.raises(ValueError, match="at least one layer"):
        ContainerImage.build("web", "v1", ())
