"""Model-size control with regularised SWAP (the paper's Fig. 5): search at several μ = σ and
plot the size of what is found against μ.

    python examples/size_control.py                       # synthetic data, small searches
    python examples/size_control.py --data cifar10 --cycles 60 --out size_control.png

For DARTS, Θ is the scoring cell's parameter count in thousands (the table's cells span about
0.3–2.7 K); the plot shows the found scoring-cell size and its evaluation-size network (20 cells,
C=36) in millions. The relation is monotone in expectation: larger μ, larger models.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from swapprobe.data import load_batch
from swapprobe.evolution import EvolutionConfig
from swapprobe.results import ScoreSettings
from swapprobe.searching import run_search
from swapprobe.searchspaces import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="darts", choices=("darts", "nb201"))
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--mu", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 2.5])
    parser.add_argument("--seeds", type=int, default=2, help="searches per μ")
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--out", default="size_control.png")
    args = parser.parse_args()

    space = get_space(args.space)
    data = load_batch(args.data, batch_size=16)
    rows = []
    for mu in args.mu:
        for seed in range(args.seeds):
            settings = ScoreSettings(
                batch_size=16,
                repeats=args.repeats,
                seed=seed,
                mu=mu,
                sigma=mu,
                size_unit=space.size_unit,
                baselines=False,
                keep_patterns="none",
            )
            config = EvolutionConfig(
                population=args.population, cycles=args.cycles, mutation_times=5, seed=seed
            )
            outcome = run_search(space, data, settings, config)
            theta = outcome.best.theta
            rows.append((mu, seed, theta, outcome.evaluation_params / 1e6))
            print(
                f"μ=σ={mu:<5g} seed {seed}: found Θ = {theta:.3f} {space.size_unit}, "
                f"evaluation size {outcome.evaluation_params / 1e6:.2f} M "
                f"({outcome.wall_seconds:.0f} s)",
                flush=True,
            )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = np.array(rows)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, column, label in (
        (axes[0], 2, f"found Θ ({space.size_unit})"),
        (axes[1], 3, "evaluation-size params (M)"),
    ):
        ax.scatter(table[:, 0], table[:, column], alpha=0.6)
        means = [table[table[:, 0] == mu, column].mean() for mu in args.mu]
        ax.plot(args.mu, means, "o-", color="C1", label="mean over seeds")
        ax.set_xlabel(f"μ = σ ({space.size_unit})")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{space.name}: found model size follows μ")
    fig.tight_layout()
    fig.savefig(Path(args.out), dpi=120)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
