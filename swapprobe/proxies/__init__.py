"""Zero-cost proxies beside SWAP, as pure functions of what a forward/backward pass produces.

Nothing here imports torch or onnxruntime: the pass that produces the inputs (block
covariances, block-local vector-Jacobian cross matrices, FLOPs) lives elsewhere
(:mod:`swapprobe.capture.proxy_pass` today), so the numbers can be tested by hand and recomputed
from stored values. Every proxy is oriented so that **bigger is better**.

- :mod:`.azproxies`: AZ-NAS's expressivity, progressivity, trainability and complexity;
- :mod:`.aggregate`: AZ-NAS's non-linear rank aggregate Σ_k log(rank_k / N);
- :mod:`.selection`: choosing a proxy set on one half of a table and checking it on the other.
"""

from __future__ import annotations

from swapprobe.proxies.aggregate import (
    aggregate,
    aggregate_results,
    ascending_ranks,
    set_aggregates,
)
from swapprobe.proxies.azproxies import (
    block_entropies,
    conv_macs,
    covariance_entropy,
    expressivity,
    largest_singular_value,
    progressivity,
    trainability,
    trainability_term,
)

__all__ = [
    "aggregate",
    "aggregate_results",
    "ascending_ranks",
    "block_entropies",
    "conv_macs",
    "covariance_entropy",
    "expressivity",
    "largest_singular_value",
    "progressivity",
    "set_aggregates",
    "trainability",
    "trainability_term",
]
