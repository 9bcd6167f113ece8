"""The benchmark's sections, in the order they run (each module: one section; see ``..section``)."""

from __future__ import annotations

from typing import Any

from ..section import Section
from .cpu import Cpu
from .kv import KV
from .micro import Micro
from .peers_matrix import PeersMatrix
from .peers_tau2 import PeersTau2
from .pools import PoolsSection
from .saturation import Saturation
from .scale import Scale
from .scaling import Scaling
from .spill import Spill

SECTIONS: tuple[Section[Any], ...] = (Micro(), Cpu(), Saturation(), PoolsSection(), Scale(), Scaling(), Spill(),
                                      KV(), PeersMatrix(), PeersTau2())
BY_NAME: dict[str, Section[Any]] = {s.name: s for s in SECTIONS}
