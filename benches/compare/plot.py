"""Plots of `cargo xtask compare`: reads its results.json, writes PNGs into a directory and prints
their file names (one a line).

    python3 benches/compare/plot.py docs/benchmarks/results.json docs/benchmarks

* ``survival-<cgroup>.png``: survival rate per contender per allocation rate;
* ``peak-<cgroup>.png``: the survivors' peak usage as a fraction of the limit;
* ``timeline-<cgroup>.png`` (after ``cargo xtask compare --timeline``): the cgroup's memory over
  time for one run of each Python contender, against the limit and memguard's thresholds, with
  the level rises, shed points and OOM kills.

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
    return (f"{m['cpu']} ({m['cores']} cores), kernel {m['kernel']}, cgroup {m['cgroup']},\n"
            f"emulation: {m['emulation']}\n{c['runs']} run(s) per bar; `{c['command']}`")


def cells_by(c: dict) -> tuple[list[str], list[int], dict]:
    ids: list[str] = []
    rates = sorted({x["rate"] for x in c["cells"]})
    table = {}
    for x in c["cells"]:
        if x["id"] not in ids:
            ids.append(x["id"])
        table[(x["id"], x["rate"])] = x
    return ids, rates, table


def bars(c: dict, out: str, name: str, value, label, xlabel: str, title: str, xlim=None, line=None) -> str:
    """Horizontal bars: one group per contender (top to bottom in the report's order), one bar
    per rate, each labelled (``label(c, cell)``)."""
    ids, rates, table = cells_by(c)
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(ids) + 2.0))
    height = 0.8 / len(rates)
    for k, rate in enumerate(rates):
        ys = [len(ids) - 1 - i + ((len(rates) - 1) / 2 - k) * height for i in range(len(ids))]
        xs, texts = [], []
        for cid in ids:
            cell = table.get((cid, rate))
            ok = cell is not None and not cell.get("not_run")
            xs.append(value(c, cell) if ok else 0.0)
            texts.append(label(c, cell) if ok else ("not run" if cell else ""))
        ax.barh(ys, [0 if x != x else x for x in xs], height, label=rate_name(rate))
        for y, x, t in zip(ys, xs, texts):
            ax.text((0 if x != x else x) + (xlim[1] if xlim else 1) * 0.01, y, t, va="center", fontsize=6.5)
    ax.set_yticks(range(len(ids)))
    ax.set_yticklabels(list(reversed(ids)), fontsize=8)
    ax.set_xlabel(xlabel)
    if xlim:
        ax.set_xlim(*xlim)
    if line is not None:
        ax.axvline(line, color="black", linewidth=0.8, linestyle="--")
    ax.set_title(f"{title}\n{subtitle(c)}", fontsize=8.5)
    ax.legend(fontsize=7, title="allocation rate", title_fontsize=7, loc="lower right")
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return name


def survived_label(c: dict, cell: dict) -> str:
    runs = cell["runs"]
    crashed = sum(bool(r.get("crashed")) for r in runs)  # a crash is not an OOM kill: said apart
    return f"{sum(r['survived'] for r in runs)}/{len(runs)}" + (f" ({crashed} crashed)" if crashed else "")


def peak_label(c: dict, cell: dict) -> str:
    p = peak_fraction(c, cell)
    return "no survivor" if p != p else f"{p:.2f}"


def survival_rate(c: dict, cell: dict) -> float:
    runs = cell["runs"]
    return 100.0 * sum(r["survived"] for r in runs) / len(runs) if runs else float("nan")


def peak_fraction(c: dict, cell: dict) -> float:
    peaks = sorted(r["peak"] / c["limit"] for r in cell["runs"] if r["survived"])
    return peaks[len(peaks) // 2] if peaks else float("nan")


LEVEL_WARN, LEVEL_CRITICAL = 0.80, 0.95


def usage_at(usage: list, t: float) -> float:
    """The usage (MiB) sampled last before ``t`` (the first sample if none)."""
    best = usage[0][1] if usage else 0
    for ts, b in usage:
        if ts > t:
            break
        best = b
    return best / (1 << 20)


def timeline(tl: dict, out: str) -> str:
    """Memory over time: one panel per rate, one line per contender."""
    series = tl["series"]
    rates = sorted({x["rate"] for x in series})
    limit = tl["limit"] / (1 << 20)
    fig, axes = plt.subplots(len(rates), 1, figsize=(10, 4.2 * len(rates)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ids = []
    for x in series:
        if x["id"] not in ids:
            ids.append(x["id"])
    for ax, rate in zip(axes[:, 0], rates):
        for x in [s for s in series if s["rate"] == rate]:
            color = colors[ids.index(x["id"]) % len(colors)]
            ts = [u[0] for u in x["usage"]]
            mib = [u[1] / (1 << 20) for u in x["usage"]]
            end = "survived" if x["survived"] else "OOM-killed" if x.get("oom_kills") else "died (no OOM kill)"
            ax.plot(ts, mib, color=color, linewidth=1.1, label=f"{x['id']} ({end})")
            rises = [(t, e) for t, e in x["events"] if e.startswith("level ") and e[6:].split("->")[1] > e[6:].split("->")[0]]
            sheds = [t for t, e in x["events"] if e.startswith("shed ")]
            ax.scatter([t for t, _ in rises], [usage_at(x["usage"], t) for t, _ in rises], marker="^", s=28,
                       color=color, edgecolors="black", linewidths=0.4, zorder=3)
            ax.scatter(sheds, [usage_at(x["usage"], t) for t in sheds], marker="v", s=18, color=color, zorder=3)
            if not x["survived"] and ts:
                # The kill: where usage peaked, at the limit, before the killed process's memory went.
                k = max(range(len(mib)), key=lambda i: mib[i])
                ax.scatter([ts[k]], [mib[k]], marker="X", s=70, color=color, edgecolors="black", zorder=4)
        for frac, name, style in ((1.0, "limit", "-"), (LEVEL_CRITICAL, "95% (Critical)", "--"), (LEVEL_WARN, "80% (Warning)", ":")):
            ax.axhline(limit * frac, color="black", linewidth=0.8, linestyle=style)
            ax.text(0.0, limit * frac + 2, name, fontsize=7, va="bottom")
        ax.set_ylim(0, limit * 1.12)
        ax.set_xlabel("seconds since the worker started")
        ax.set_ylabel("cgroup memory usage (MiB)")
        ax.set_title(f"allocation rate {rate_name(rate)}: ^ level rise, v shed, X OOM kill", fontsize=8.5)
        ax.legend(fontsize=7, loc="lower right")
    m = tl["machine"]
    fig.suptitle(f"A growing cache toward a 256 MiB limit, one run per contender (cgroup {m['cgroup']})\n"
                 f"{m['cpu']} ({m['cores']} cores), kernel {m['kernel']}, emulation: {m['emulation']}\n"
                 f"`{tl.get('command', '')}`", fontsize=8.5)
    fig.tight_layout()
    name = f"timeline-{m['cgroup']}.png"
    fig.savefig(os.path.join(out, name), dpi=110)
    plt.close(fig)
    return name


def main() -> int:
    results, out = sys.argv[1], sys.argv[2]
    with open(results) as f:
        r = json.load(f)
    for c in r["campaigns"]:
        v = c["machine"]["cgroup"]
        print(bars(c, out, f"survival-{v}.png", survival_rate, survived_label, "runs survived (%)",
                   f"Growing cache toward a 256 MiB limit: survival (cgroup {v})", xlim=(0, 112)))
        print(bars(c, out, f"peak-{v}.png", peak_fraction, peak_label, "peak usage / limit (median of survivors)",
                   f"Survivors' peak usage (cgroup {v})", xlim=(0, 1.12), line=1.0))
    for tl in r.get("timelines") or []:
        print(timeline(tl, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
