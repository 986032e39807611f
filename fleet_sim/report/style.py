"""One look for every figure: colours per hosting mode, semantic colours, rc settings.

A hosting mode keeps one hue in every figure (Okabe–Ito colour-blind-safe
palette): bare metal vermillion, VMs blue, containers bluish green. Variants of
a mode (``vm-overcommit``, ``vm-pinned``, ``container-quota`` …) get shades and
line styles of their base mode's hue, chosen from the variant's name alone, so
a variant has the same look in every figure whatever else is plotted beside it.
The CPU breakdown (demand, allocated, throttled, contention) and rollout
versions use colours no mode uses.

Nothing here imports ``matplotlib.pyplot``: this module is safe under any
backend (Agg included) and never switches one.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from matplotlib.colors import to_hex, to_rgb

#: base colour of each hosting mode (Okabe & Ito, "Color Universal Design", 2008);
#: lowercase hex, as matplotlib.colors.to_hex gives back
MODE_COLORS: dict[str, str] = {
    "baremetal": "#d55e00",  # vermillion
    "vm": "#0072b2",  # blue
    "container": "#009e73",  # bluish green
}
#: colour of anything that is not a known hosting mode
OTHER_COLOR = "#666666"

#: spellings that name a base mode, matched at the start of the name with
#: separators removed (longest first); what follows names a variant
_ALIASES: dict[str, str] = {
    "baremetal": "baremetal", "bare": "baremetal", "metal": "baremetal",
    "sharedos": "baremetal", "shared": "baremetal", "bm": "baremetal", "os": "baremetal",
    "process": "baremetal", "processes": "baremetal",
    "vm": "vm", "vms": "vm", "kvm": "vm", "hypervisor": "vm", "virtual": "vm",
    "virtualmachine": "vm", "virtualmachines": "vm", "microvm": "vm", "firecracker": "vm",
    "container": "container", "containers": "container", "docker": "container",
    "cgroup": "container", "cgroups": "container", "k8s": "container",
    "kubernetes": "container", "pod": "container", "pods": "container",
}
#: aliases too short to match inside a longer first word ("osmosis" is no OS)
_WHOLE_WORD = frozenset({"bm", "os"})
#: known variants, in the order of the shades they get (others: by a stable hash)
_KNOWN_VARIANTS = ("overcommit", "pinned", "type2", "firecracker", "quota", "cpuset",
                   "fluid", "weight", "limits", "nolimits")
#: (mix towards black (<0) or white (>0), line style) of variant shades 0..3
_SHADES: tuple[tuple[float, str], ...] = (
    (-0.40, "--"), (0.45, ":"), (-0.65, "-."), (0.70, (0, (5, 1, 1, 1, 1, 1))),
)

#: semantic colours of the CPU breakdown (none is a mode colour)
CPU_COLORS: dict[str, str] = {
    "demand": "#000000",
    "allocated": "#9E9E9E",
    "contention": "#CC79A7",  # reddish purple: neighbours' fault (steal for VMs)
    "throttled": "#E69F00",  # orange: the unit's own caps
}
#: hatches that tell throttled from contention in greyscale prints too
CPU_HATCHES: dict[str, str] = {"contention": "xx", "throttled": "//"}
#: colours of the old and new version in a rollout, when no mode colour applies
VERSION_COLORS: dict[str, str] = {"old": "#999999", "new": "#56B4E9"}

#: matplotlib rc settings of every report figure (readable at 100 %)
RC: dict[str, object] = {
    "figure.figsize": (8.0, 4.5),
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "image.cmap": "viridis",
}
#: colour map of utilization heatmaps (perceptually uniform, readable in greyscale)
HEATMAP_CMAP = "viridis"


def _normalise(mode: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(mode).strip().lower()).strip("-")


def _split(mode: str) -> tuple[str | None, str]:
    """(base mode or None, variant name or "") of ``mode``."""
    norm = _normalise(mode)
    words = norm.split("-")
    flat = norm.replace("-", "")
    for alias in sorted(_ALIASES, key=len, reverse=True):
        if not flat.startswith(alias):
            continue
        if alias in _WHOLE_WORD and len(words[0]) > len(alias) and words[0] not in _ALIASES:
            continue
        return _ALIASES[alias], flat[len(alias):]
    return None, flat


def base_mode(mode: str) -> str | None:
    """The base hosting mode (``baremetal``, ``vm`` or ``container``) of ``mode``,
    or None if the name matches none of them."""
    return _split(mode)[0]


def _variant_index(mode: str) -> int | None:
    """None for a plain base mode, else the shade index of the variant."""
    base, variant = _split(mode)
    if base is not None and not variant:
        return None
    for i, known in enumerate(_KNOWN_VARIANTS):
        if variant.startswith(known):
            return i % len(_SHADES)
    return zlib.crc32(variant.encode()) % len(_SHADES)


def _mix(color: str, amount: float) -> str:
    r, g, b = to_rgb(color)
    if amount < 0:
        k = 1 + amount
        return to_hex((r * k, g * k, b * k))
    return to_hex((r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount))


@dataclass(frozen=True)
class ModeStyle:
    """How one hosting mode is drawn: ``color``, ``linestyle`` and ``hatch``."""

    color: str
    linestyle: object = "-"
    hatch: str | None = None


def mode_style(mode: str) -> ModeStyle:
    """The style of ``mode``: its base hue (a shade and line style for a variant)."""
    base = base_mode(mode)
    color = MODE_COLORS[base] if base is not None else OTHER_COLOR
    shade = _variant_index(mode)
    if shade is None:
        return ModeStyle(color)
    amount, linestyle = _SHADES[shade]
    return ModeStyle(_mix(color, amount), linestyle, ("//", "..", "\\\\", "xx")[shade])


def mode_color(mode: str) -> str:
    """The colour of ``mode`` (hex), the same in every figure."""
    return mode_style(mode).color


def mode_order(modes: Iterable[str]) -> list[str]:
    """``modes`` sorted bare metal → VMs → containers → others, variants after their base."""
    rank = {"baremetal": 0, "vm": 1, "container": 2}

    def key(mode: str) -> tuple[int, int, str]:
        base = base_mode(mode)
        return (rank.get(base, 3) if base else 3, 0 if _variant_index(mode) is None else 1,
                str(mode))

    return sorted({str(m) for m in modes}, key=key)
