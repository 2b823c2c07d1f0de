"""SWAP against GLUE on the FlexiBERT benchmark (SWAP_Universal's table, AFL-3.0): one input
setting, one building mode, a seeded subset of rows or all 500; through the one pipeline
(:func:`swapprobe.searching.correlate_table`, as ``swapprobe correlate`` runs it).

    python examples/flexibert_study.py --space flexibert --data tokens:zipf -S 32 -T 128 \\
        --limit 100 --out /work/results/flexibert/ref_zipf_S32_T128

writes ``OUT.csv`` (per row: index, text, GLUE tasks, SWAP, units, seconds) and ``OUT.json``
(Spearman of SWAP with every task on all rows, the even- and the odd-indexed half of them,
and the wall time). The even/odd halves let an input setting be chosen on one half and checked
on the other.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="flexibert")
    parser.add_argument("--table", default=_default_table())
    parser.add_argument("--data", default="tokens:zipf")
    parser.add_argument("-S", "--batch-size", type=int, default=32)
    parser.add_argument("-T", "--seq-len", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None, help="seeded subset of N rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    parser.add_argument("--repeats", type=int, default=None, help="draws (default: the space's)")
    parser.add_argument("--dropout", action="store_true", help="the reference's dropout-on mode")
    parser.add_argument("--store", default=None, help="an HDF5 store of every result")
    parser.add_argument("--out", required=True, help="output path without suffix")
    args = parser.parse_args(argv)

    import torch

    from swapprobe.correlate import read_table
    from swapprobe.data import load_batch
    from swapprobe.results import RuntimeOptions, ScoreSettings
    from swapprobe.searching import correlate_table
    from swapprobe.searchspaces import get_space

    torch.set_num_threads(args.threads)
    space = get_space(args.space, dropout=True) if args.dropout else get_space(args.space)
    truth = read_table(args.table)
    try:
        data = load_batch(
            args.data, batch_size=args.batch_size, seed=args.seed, seq_len=args.seq_len
        )
    except TypeError:  # a swapprobe without the tokens: sources yet
        data = _tokens_as_documented(args.data, args.batch_size, args.seq_len, args.seed)
    d = space.defaults
    settings = ScoreSettings(
        batch_size=args.batch_size,
        repeats=args.repeats or d.repeats,
        seed=args.seed,
        init=d.init,
        size_unit=space.size_unit,
        baselines=True,
        keep_patterns="none",
        backend=args.backend,
        runtime=RuntimeOptions(threads=args.threads),
    )
    done = [0]
    start = time.perf_counter()

    def on_arch(count: int, total: int) -> None:
        if count - done[0] >= 10 or count == total:
            done[0] = count
            spent = time.perf_counter() - start
            print(f"  {count}/{total}  {spent:.0f} s", file=sys.stderr, flush=True)

    report = correlate_table(
        space,
        truth,
        data,
        settings,
        limit=args.limit,
        seed=args.seed,
        on_arch=on_arch,
        bootstrap=0,
        store=args.store,
    )
    wall = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = report.table_rows(truth)
    swap = np.array([r["swap"] for r in rows])
    summary = {
        "space": args.space,
        "data": data.source,
        "S": args.batch_size,
        "T": args.seq_len,
        "rows": len(rows),
        "wall_seconds": wall,
        "seconds_per_model": float(np.mean([r["seconds"] for r in rows])),
        "spearman": {},
        "spearman_even": {},
        "spearman_odd": {},
    }
    from scipy import stats

    half = np.asarray(report.rows)  # table row indices: even and odd rows
    for task, values in report.accuracies.items():
        for key, keep in (
            ("spearman", half >= 0),
            ("spearman_even", half % 2 == 0),
            ("spearman_odd", half % 2 == 1),
        ):
            summary[key][task] = float(stats.spearmanr(swap[keep], values[keep]).statistic)
    for correlation in report.correlations:
        if correlation.target == "glue":
            summary.setdefault("glue_by_metric", {})[correlation.metric] = correlation.spearman
    with open(out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", *rows[0]])
        for row_index, row in zip(report.rows, rows, strict=True):
            writer.writerow([row_index, *row.values()])
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def _tokens_as_documented(name: str, samples: int, length: int, seed: int):  # type: ignore[no-untyped-def]
    """The ``tokens:`` sources as swapprobe's data module documents them (uniform and Zipf
    s = 1.1 ids 1..V-1 from ``default_rng(seed)`` row-major; English: pydoc topics, lower-cased,
    words and runs of one symbol hashed by crc32 into 1..V-1, the first S documents of T)."""
    import re
    import zlib

    from swapprobe.data import token_batch

    vocab, kind = 30522, name.removeprefix("tokens:")
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        ids = rng.integers(1, vocab, (samples, length), dtype=np.int64)
    elif kind == "zipf":
        cdf = np.cumsum(np.arange(1, vocab, dtype=np.float64) ** -1.1)
        cdf /= cdf[-1]
        drawn = np.searchsorted(cdf, rng.random((samples, length)), side="right")
        ids = 1 + np.minimum(drawn, vocab - 2).astype(np.int64)
    elif kind == "english":
        from pydoc_data.topics import topics

        text = "\n".join(topics[key] for key in sorted(topics)).lower()
        pattern = re.compile(r"[^\W_]+|([^\s\w]|_)\1*")
        stream = [1 + zlib.crc32(m.group(0).encode()) % (vocab - 1) for m in pattern.finditer(text)]
        ids = np.asarray(stream[: samples * length], np.int64).reshape(samples, length)
    else:
        raise SystemExit(f"unknown token source {name}")
    return token_batch(ids, source=f"{name} (as documented), {samples}x{length}, seed {seed}")


def _default_table() -> str:
    shared = Path(
        os.environ.get("SWAPPROBE_SHARED", Path(__file__).resolve().parents[2] / "shared")
    )
    return str(shared / "data" / "flexibert_glue_500.json")


if __name__ == "__main__":
    raise SystemExit(main())
