"""PNG plots of results.json (matplotlib, optional: without it the plots are skipped with a note)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .common import log


def plot_all(r: dict[str, Any], out: Path) -> dict[str, Any]:
    """Every figure results.json has the figures for, as OUT/NAME.png; the files made (or why none)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        note = "matplotlib is not installed: plots skipped (pip install -e '.[bench]')"
        log(note)
        return {"skipped": note}
    made: list[str] = []
    for name, draw in FIGURES:
        fig = draw(r, plt)
        if fig is not None:
            fig.tight_layout()
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
            made.append(name)
    return {"files": made}


def baselines(r: dict[str, Any], plt: Any) -> Any:
    """slurmgen, the ideal client and each baseline's tokens/s, bars."""
    base = r.get("baselines") or {}
    if not base.get("slurmgen_tokens_per_s"):
        return None
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
    return fig


def scaling(r: dict[str, Any], plt: Any) -> Any:
    """tokens/s against peers = replicas, with the linear line."""
    points = r.get("scaling") or []
    if not points:
        return None
    ks = [p["peers"] for p in points]
    tps = [p["tokens_per_s"] for p in points]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(ks, tps, "o-", label="slurmgen")
    ax.plot(ks, [tps[0] * k / ks[0] for k in ks], "--", color="#999", label="linear")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("agent peers = simulated replicas")
    ax.set_ylabel("tokens/s")
    ax.legend()
    return fig


def saturation(r: dict[str, Any], plt: Any) -> Any:
    """slurmgen over the ideal client per workflow, against the 0.95 target."""
    sat = r.get("saturation") or {}
    if not sat:
        return None
    fig, ax = plt.subplots(figsize=(5, 4))
    names = list(sat)
    ax.bar(names, [sat[n]["ratio"] for n in names], color="#2a7")
    ax.axhline(0.95, ls="--", color="#c33", label="target 0.95")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("slurmgen tokens/s / ideal direct client")
    ax.legend(loc="lower right")
    return fig


def scale(r: dict[str, Any], plt: Any) -> Any:
    """The largest scale point's timeline: requests at the simulator and slurmgen's RSS."""
    timeline = r.get("timeline") or {}
    big = max(timeline, key=lambda k: int(k.split("-")[-1]), default=None)
    if not big:
        return None
    pts = timeline[big]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([p["t"] for p in pts], [p["in_flight"] for p in pts], label="requests at the simulator")
    ax.set_xlabel("s")
    ax.set_ylabel("requests in flight")
    ax2 = ax.twinx()
    ax2.plot([p["t"] for p in pts], [p["rss"] / 2**20 for p in pts], color="#c60", label="RSS slurmgen (MiB)")
    ax2.set_ylabel("RSS of driver+registry+peers (MiB)")
    ax.set_title(f"{big}: concurrent Coral tasks")
    return fig


def systems_tokens(r: dict[str, Any], plt: Any) -> Any:
    """Per workload: each system's tokens/s against concurrency (log-log), all on the same replicas."""
    panels = system_points(r)
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, systems) in zip(axes.flat, panels.items()):
        for name, pts in systems.items():
            pts = sorted(pts)
            style = dict(color="#2a7", lw=2) if name == "slurmgen" else {}
            ax.plot([c for c, _ in pts], [t for _, t in pts], "o-" if len(pts) > 1 else "o", label=name, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrency (tasks or threads)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    for row in axes:
        row[0].set_ylabel("tokens/s at the replicas")
    return fig


def systems_cpu(r: dict[str, Any], plt: Any) -> Any:
    """CPU ms per LLM call of every system (log), bars."""
    cpu = system_cpu(r)
    if not cpu:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.6))
    labels = [lb for lb, _ in cpu]
    bars = ax.barh(labels, [v for _, v in cpu], color=["#2a7" if lb.startswith("slurmgen") else "#48c"
                                                         for lb in labels])
    for b, (_, v) in zip(bars, cpu):
        ax.annotate(f"{v:.2f}", (v, b.get_y() + b.get_height() / 2), va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("CPU ms per LLM call, every process of the system (log)")
    ax.invert_yaxis()
    return fig


def system_points(r: dict[str, Any]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Per workload setup: each system's (concurrency, tokens/s) points, all taken on the same replicas."""
    panels: dict[str, dict[str, list[tuple[float, float]]]] = {}
    base = r.get("baselines") or {}
    if base.get("slurmgen_tokens_per_s"):
        nr: dict[str, list[tuple[float, float]]] = {"slurmgen": [(base["slurmgen_concurrency"],
                                                                  base["slurmgen_tokens_per_s"])]}
        eq = base.get("batch_barrier_equal_concurrency")
        if eq:
            nr["slurmgen"].append((400, eq["slurmgen_400_tokens_per_s"]))
        sat = (r.get("saturation") or {}).get(base.get("workflow", "nr"), {})
        if sat.get("ideal_tokens_per_s"):
            nr["ideal direct client"] = [(sat["concurrency"], sat["ideal_tokens_per_s"])]
        if "central_single_loop" in base:
            nr["central single loop"] = [(base["central_single_loop"]["concurrency"],
                                          base["central_single_loop"]["tokens_per_s"])]
        if "batch_barrier" in base:
            b = base["batch_barrier"]
            nr["batch barrier"] = [(b["batch"] * b["concurrency_batches"], b["tokens_per_s"])]
        if base.get("thread_pool_sweep"):
            nr["thread pool"] = [(float(k), v) for k, v in base["thread_pool_sweep"].items()]
        panels[f"{base.get('workflow', 'nr')}, {base['replicas']} replicas"] = nr
    m = (r.get("peers") or {}).get("matrix") or {}
    coral: dict[str, list[tuple[float, float]]] = {}
    if m.get("ratios"):
        coral = {"slurmgen": [(m["concurrency"], m["slurmgen"]["tokens_per_s"])],
                 "Matrix 0.2.6": [(m["concurrency"], m["matrix"]["tokens_per_s"])]}
    bc = (r.get("barrier") or {}).get("coral")
    if bc:
        coral.setdefault("slurmgen", []).append((bc["slurmgen_concurrency"], bc["slurmgen_tokens_per_s"]))
        coral["batch barrier"] = [(bc["batch"] * bc["batches_in_flight"], bc["tokens_per_s"])]
    if coral:
        panels["coral 4-turn, 2 replicas"] = coral
    for domain, d in (((r.get("peers") or {}).get("tau2") or {}).get("domains") or {}).items():
        systems: dict[str, list[tuple[float, float]]] = {}
        for key, e in d["systems"].items():
            name = "slurmgen" if key == "slurmgen" else "tau2 runner" + ("" if e.get("save_to", True) else
                                                                         " (no results file)")
            conc = e.get("max_in_flight") or e.get("max_concurrency")
            systems.setdefault(name, []).append((conc, e["tokens_per_s"]))
        panels[f"tau2 {domain}, {d['replicas']} replicas"] = systems
    return panels


def system_cpu(r: dict[str, Any]) -> list[tuple[str, float]]:
    """(system and workload, CPU ms per LLM call summed over all its processes)."""
    out: list[tuple[str, float]] = []
    cpu = r.get("cpu") or {}
    if cpu.get("cpu_ms_per_llm_call_window"):
        out.append((f"slurmgen, coral {cpu.get('max_turns', '')}-turn, zero-latency replicas",
                    cpu["cpu_ms_per_llm_call_window"]))
    m = (r.get("peers") or {}).get("matrix") or {}
    if m.get("ratios"):
        out.append(("slurmgen, coral (Matrix's run)", m["slurmgen"]["cpu_ms_per_llm_call"]))
        out.append(("Matrix 0.2.6, coral", m["matrix"]["cpu_ms_per_llm_call"]))
    for domain, d in (((r.get("peers") or {}).get("tau2") or {}).get("domains") or {}).items():
        for key, e in d["systems"].items():
            label = "slurmgen" if key == "slurmgen" else key.replace("tau2_runner_", "tau2 runner, ").replace(
                "_nosave", ", no results file")
            out.append((f"{label}, tau2 {domain}", e["cpu_ms_per_llm_call"]))
    return out


FIGURES: tuple[tuple[str, Callable[[dict[str, Any], Any], Any]], ...] = (
    ("baselines.png", baselines), ("scaling.png", scaling), ("saturation.png", saturation), ("scale.png", scale),
    ("systems_tokens.png", systems_tokens), ("systems_cpu.png", systems_cpu))
