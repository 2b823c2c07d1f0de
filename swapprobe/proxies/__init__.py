"""Zero-cost proxies beside SWAP, as pure functions of what a forward/backward pass produces.

Nothing here imports torch or onnxruntime: the pass that produces the inputs (block
covariances, block-local vector-Jacobian cross matrices, FLOPs) lives elsewhere
(:mod:`swapprobe.capture.proxy_pass` today), so the numbers can be tested by hand and recomputed
from stored values. Every proxy is oriented so that **bigger is better**.

- :mod:`.azproxies`: AZ-NAS's expressivity, progressivity, trainability and complexity;
- :mod:`.aggregate`: AZ-NAS's non-linear rank aggregate Σ_k log(rank_k / N);
- :mod:`.selection`: choosing a proxy set on one half of a table and checking it on the other;
- :mod:`.gradients`: ZiCo, L-SWAG's Λ and Ψ (a layer-range SWAP), L-SWAG = Λ × Ψ, from
  per-layer gradient statistics across mini-batches;
- :mod:`.interval`: L-SWAG's layer interval from gradient σ against depth percentile;
- :mod:`.vkdnw`: VKDNW, the entropy of the Fisher-information spectrum's deciles;
- :mod:`.libra`: LIBRA, three complementary proxies chosen from a table;
- :mod:`.ranking`: nDCG, VKDNW's top-weighted measure of a ranking.
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
from swapprobe.proxies.gradients import (
    LayerGradientStats,
    interval_swap,
    layer_gradient_stats,
    lswag,
    lswag_lambda,
    zico,
)
from swapprobe.proxies.libra import libra_halves, libra_select
from swapprobe.proxies.ranking import ndcg
from swapprobe.proxies.vkdnw import vkdnw

__all__ = [
    "LayerGradientStats",
    "aggregate",
    "aggregate_results",
    "ascending_ranks",
    "block_entropies",
    "conv_macs",
    "covariance_entropy",
    "expressivity",
    "interval_swap",
    "largest_singular_value",
    "layer_gradient_stats",
    "libra_halves",
    "libra_select",
    "lswag",
    "lswag_lambda",
    "ndcg",
    "progressivity",
    "set_aggregates",
    "trainability",
    "trainability_term",
    "vkdnw",
    "zico",
]
