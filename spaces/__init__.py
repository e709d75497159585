"""spaces: what an architecture is, what it costs, which ones to try.

ArchSpec ──► build(spec) -> nn.Module      (spaces.builder; the only torch import)
         └─► cost(spec)  -> Cost            (params, MACs, activations; no module built)
solve_width(spec, budget, rule) -> k        (the Res3D parameter-budget protocol)
"""

from spaces.arch import ArchSpec
from spaces.cost import Cost, cost
from spaces.zoo import NETWORKS, PROTOCOLS, named

__all__ = ["ArchSpec", "Cost", "NETWORKS", "PROTOCOLS", "build", "cost", "named"]


def build(spec: ArchSpec, *, zero_init_residual: bool = False):
    """Build the nn.Module for `spec` (imports torch lazily so cost-only users never load it)."""
    from spaces.builder import build as _build

    return _build(spec, zero_init_residual=zero_init_residual)
