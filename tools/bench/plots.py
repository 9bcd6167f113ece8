"""PNG plots of results.json (matplotlib, optional: without it the plots are skipped with a note)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import log


def plot_all(r: dict[str, Any], out: Path) -> dict[str, Any]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        note = "matplotlib is not installed: plots skipped (pip install -e '.[bench]')"
        log(note)
        return {"skipped": note}
    made: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        made.append(name)

    base = r.get("baselines") or {}
    if base.get("slurmgen_tokens_per_s"):
        labels, values = ["slurmgen"], [base["slurmgen_tokens_per_s"]]
        for key, label in (("central_single_loop", "central\nsingle loop"), ("batch_barrier", "batch barrier\n100 x 4"),
                           ("thread_pool_default", "thread pool\n3"), ("thread_pool_best", "thread pool\nbest")):
            if key in base:
                labels.append(label + (f" ({base[key]['threads']})" if key == "thread_pool_best" else ""))
                values.append(base[key]["tokens_per_s"])
        sat = (r.get("saturation") or {}).get(base.get("workflow", "nr"), {})
        if sat.get("ideal_tokens_per_s"):
            labels.insert(0, "ideal\ndirect client")
            values.insert(0, sat["ideal_tokens_per_s"])
        fig, ax = plt.subplots(figsize=(8, 4))
        colors = ["#2a7" if lb == "slurmgen" else "#888" if lb.startswith("ideal") else "#48c" for lb in labels]
        bars = ax.bar(labels, values, color=colors)
        for b, v in zip(bars, values):
            ax.annotate(f"{v:,.0f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("tokens/s (wall, time-scaled simulator)")
        ax.set_title(f"{base.get('workflow', 'nr')}: same simulated replicas, same run")
        save(fig, "baselines.png")

    scaling = r.get("scaling") or []
    if scaling:
        ks = [p["peers"] for p in scaling]
        tps = [p["tokens_per_s"] for p in scaling]
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(ks, tps, "o-", label="slurmgen")
        ax.plot(ks, [tps[0] * k / ks[0] for k in ks], "--", color="#999", label="linear")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("agent peers = simulated replicas")
        ax.set_ylabel("tokens/s")
        ax.legend()
        save(fig, "scaling.png")

    sat = r.get("saturation") or {}
    if sat:
        fig, ax = plt.subplots(figsize=(5, 4))
        names = list(sat)
        ax.bar(names, [sat[n]["ratio"] for n in names], color="#2a7")
        ax.axhline(0.95, ls="--", color="#c33", label="target 0.95")
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("slurmgen tokens/s / ideal direct client")
        ax.legend(loc="lower right")
        save(fig, "saturation.png")

    timeline = r.get("timeline") or {}
    big = max(timeline, key=lambda k: int(k.split("-")[-1]), default=None)
    if big:
        pts = timeline[big]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([p["t"] for p in pts], [p["in_flight"] for p in pts], label="requests at the simulator")
        ax.set_xlabel("s")
        ax.set_ylabel("requests in flight")
        ax2 = ax.twinx()
        ax2.plot([p["t"] for p in pts], [p["rss"] / 2**20 for p in pts], color="#c60", label="RSS slurmgen (MiB)")
        ax2.set_ylabel("RSS of driver+registry+peers (MiB)")
        ax.set_title(f"{big}: concurrent Coral tasks")
        save(fig, "scale.png")
    return {"files": made}
