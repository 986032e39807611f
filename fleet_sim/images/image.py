"""Images: what a host must hold before an instance can start (docs/model.md §5).

A container image is an ordered stack of content-addressed layers (base first);
versions of an app built on the same base share its layers, so a host that runs
one version fetches only the layers that differ. A VM image is one file: every
version is a new file, fetched whole. Both expose ``layers`` so a host's
:class:`~fleet_sim.images.cache.LayerCache` and the registry treat them alike.
Sizes in MB.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

#: Which part of an image a new version changes.
Change = Literal["top-layer", "whole-image"]
CHANGES: tuple[Change, ...] = ("top-layer", "whole-image")


@dataclass(frozen=True, slots=True)
class Layer:
    """One content-addressed blob: a container layer or a whole VM image file (MB)."""

    digest: str
    size_mb: float

    @classmethod
    def of(cls, content: str, size_mb: float) -> Layer:
        """The layer whose content is identified by ``content`` (sha256 digest)."""
        if size_mb < 0:
            raise ValueError(f"size_mb must be >= 0, got {size_mb!r}")
        return cls("sha256:" + hashlib.sha256(content.encode()).hexdigest(), float(size_mb))


@dataclass(frozen=True, slots=True)
class ContainerImage:
    """An app's container image at one version: layers ordered base first."""

    name: str
    version: str
    layers: tuple[Layer, ...]

    @classmethod
    def build(cls, name: str, version: str, layer_sizes_mb: tuple[float, ...]) -> ContainerImage:
        """A freshly built image with one new layer per size (base first)."""
        if not layer_sizes_mb:
            raise ValueError("an image needs at least one layer")
        return cls(name, version, tuple(
            Layer.of(f"{name}:{version}/{i}", s) for i, s in enumerate(layer_sizes_mb)))

    @property
    def size_mb(self) -> float:
        """Total size of the layers (MB)."""
        return sum(layer.size_mb for layer in self.layers)

    def next_version(self, version: str, changed: Change) -> ContainerImage:
        """The next version: a new top layer on the same base, or every layer rebuilt."""
        if changed == "top-layer":
            top = self.layers[-1]
            return ContainerImage(self.name, version, (
                *self.layers[:-1], Layer.of(f"{self.name}:{version}/top", top.size_mb)))
        if changed == "whole-image":
            return ContainerImage.build(
                self.name, version, tuple(layer.size_mb for layer in self.layers))
        raise ValueError(f"unknown change {changed!r}; valid: {', '.join(CHANGES)}")


@dataclass(frozen=True, slots=True)
class VMImage:
    """A VM disk image at one version: one file (e.g. qcow2), copied whole (MB)."""

    name: str
    version: str
    size_mb: float

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The image file as the single blob a host caches."""
        return (Layer.of(f"{self.name}:{self.version}.qcow2", self.size_mb),)

    def next_version(self, version: str, changed: Change = "whole-image") -> VMImage:
        """The next version: a new file of the same size, whatever changed inside it."""
        if changed not in CHANGES:
            raise ValueError(f"unknown change {changed!r}; valid: {', '.join(CHANGES)}")
        return VMImage(self.name, version, self.size_mb)


Image = ContainerImage | VMImage
