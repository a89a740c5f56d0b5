"""Plots of `cargo xtask compare`: reads its results.json, writes PNGs into a directory and prints
their file names (one a line).

    python3 benches/compare/plot.py docs/benchmarks/results.json docs/benchmarks

* ``survival-<cgroup>.png``: survival rate per contender per allocation rate;
* ``peak-<cgroup>.png``: the survivors' peak usage as a fraction of the limit.

Every figure's title names the machine (CPU, cores), kernel, cgroup version and emulation.
"""

from __future__ import annotations

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FULL_SPEED = 100_000


def rate_name(rate: int) -> str:
    return "full speed" if rate >= FULL_SPEED else f"{rate} MiB/s"


def subtitle(c: dict) -> str:
    m = c["machine"]
    return (f"{m['cpu']} ({m['cores']} cores), kernel {m['kernel']}, cgroup {m['cgroup']}, "
            f"emulation: {m['emulation']}; {c['runs']} run(s) per bar")


def cells_by(c: dict) -> tuple[list[str], list[int], dict]:
    ids: list[str] = []
    rates = sorted({x["rate"] for x in c["cells"]})
    table = {}
    for x in c["cells"]:
        if x["id"] not in ids:
            ids.append(x["id"])
        table[(x["id"], x["rate"])] = x
    return ids, rates, table


def bars(c: dict, out: str, name: str, value, ylabel: str, title: str, ylim=None, line=None) -> str:
    ids, rates, table = cells_by(c)
    fig, ax = plt.subplots(figsize=(max(8, 0.75 * len(ids) * len(rates) / 2 + 4), 5.2))
    width = 0.8 / len(rates)
    for k, rate in enumerate(rates):
        ys = []
        for cid in ids:
            cell = table.get((cid, rate))
            ys.append(value(c, cell) if cell and not cell.get("not_run") else float("nan"))
        xs = [i + (k - (len(rates) - 1) / 2) * width for i in range(len(ids))]
        ax.bar(xs, ys, width, label=rate_name(rate))
    ax.set_xticks(range(len(ids)))
    ax.set_xticklabels(ids, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    if line is not None:
        ax.axhline(line, color="black", linewidth=0.8, linestyle="--")
    ax.set_title(f"{title}\n{subtitle(c)}", fontsize=9)
    ax.legend(fontsize=8, title="allocation rate", title_fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return name


def survival_rate(c: dict, cell: dict) -> float:
    runs = cell["runs"]
    return 100.0 * sum(r["survived"] for r in runs) / len(runs) if runs else float("nan")


def peak_fraction(c: dict, cell: dict) -> float:
    peaks = sorted(r["peak"] / c["limit"] for r in cell["runs"] if r["survived"])
    return peaks[len(peaks) // 2] if peaks else float("nan")


def main() -> int:
    results, out = sys.argv[1], sys.argv[2]
    with open(results) as f:
        r = json.load(f)
    for c in r["campaigns"]:
        v = c["machine"]["cgroup"]
        print(bars(c, out, f"survival-{v}.png", survival_rate, "runs survived (%)",
                   f"Growing cache toward a 256 MiB limit: survival (cgroup {v})", ylim=(0, 105)))
        print(bars(c, out, f"peak-{v}.png", peak_fraction, "peak usage / limit (median of survivors)",
                   f"Survivors' peak usage (cgroup {v})", ylim=(0, 1.05), line=1.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
