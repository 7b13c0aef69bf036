"""What a run prints and writes: the table, computed prompt tokens per second beside
transformers', peak memory per system, the radix on/off equivalence, a JSON file and a bar
chart (PNG)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.systems import Measurement

TINES, TINES_OFF = "tines", "tines (radix off)"
HF, LLAMA = "transformers", "llama.cpp"


def by_workload(ms: Sequence[Measurement]) -> dict[str, dict[str, Measurement]]:
    out: dict[str, dict[str, Measurement]] = {}
    for m in ms:
        out.setdefault(m.workload, {})[m.system] = m
    return out


def agreement(m: Measurement, ref: Measurement | None) -> float | None:
    """Share of `m`'s answers equal to `ref`'s on the same inputs."""
    if ref is None or m is ref or not m.answers:
        return None
    k = min(len(m.answers), len(ref.answers))
    return sum(a == b for a, b in zip(m.answers[:k], ref.answers[:k])) / k if k else None


def radix_equivalence(ms: Sequence[Measurement], on_name: str = TINES,
                      off_name: str = TINES_OFF) -> dict[str, list[int] | None]:
    """Per workload: indices where greedy answers differ with the radix cache on vs off
    ([] = identical; None = not both measured)."""
    out: dict[str, list[int] | None] = {}
    for wl, rows in by_workload(ms).items():
        on, off = rows.get(on_name), rows.get(off_name)
        out[wl] = None if on is None or off is None else \
            [i for i, (a, b) in enumerate(zip(on.answers, off.answers)) if a != b]
    return out


def speed_table(speeds: dict[str, dict[str, float]]) -> str:
    """Raw prefill / decode speed per system (probe.py), measured in this run."""
    cols = list(dict.fromkeys(k for v in speeds.values() for k in v))
    lines = [f"{'raw speed, tok/s':18} " + " ".join(f"{c.removesuffix('_tok_s'):>12}" for c in cols)]
    for system, v in speeds.items():
        lines.append(f"{system:18} " + " ".join(
            f"{v[c]:12.1f}" if c in v else f"{'':12}" for c in cols))
    return "\n".join(lines)


def table(ms: Sequence[Measurement]) -> str:
    """One row per workload and system. `same ans`: share of the system's answers equal to
    tines' (greedy; the numerics differ: tines runs dequantized weights, llama.cpp its Q4
    kernels, transformers bf16, so free text drifts apart after a few tokens)."""
    head = (f"{'workload':16} {'system':18} {'n':>3} {'valid':>6} {'progs/s':>8} "
            f"{'out tok/s':>9} {'prompt/prog':>11} {'computed/prog':>13} {'hit rate':>8} "
            f"{'same ans':>8} {'tines x':>8}")
    lines = [head, "-" * len(head)]
    for wl, rows in by_workload(ms).items():
        ref = rows.get(TINES)
        for i, (system, m) in enumerate(rows.items()):
            t = m.tally
            same = agreement(m, ref)
            ratio = "" if ref is None or m is ref or not m.programs_per_s else \
                f"{ref.programs_per_s / m.programs_per_s:7.2f}x"
            lines.append(
                f"{wl if i == 0 else '':16} {system:18} {m.n:3d} {m.valid:3d}/{m.n:<2d} "
                f"{m.programs_per_s:8.3f} {m.output_tok_per_s:9.1f} "
                f"{t.prompt_tokens / m.n:11.0f} {t.computed_tokens / m.n:13.0f} "
                f"{t.hit_rate:8.1%} {'' if same is None else f'{same:8.0%}':>8} {ratio:>8}")
    return "\n".join(lines)


def computed_rate(rows: dict[str, Measurement]) -> float | None:
    """tines' computed prompt tokens per second over transformers' on one workload (None
    unless both ran it and computed something)."""
    tines, hf = rows.get(TINES), rows.get(HF)
    if tines is None or hf is None or not hf.computed_tok_per_s:
        return None
    return tines.computed_tok_per_s / hf.computed_tok_per_s


def computed_rate_table(ms: Sequence[Measurement]) -> str:
    """Per workload: each system's computed prompt tokens per second (prompt tokens it ran
    through the model / the workload's wall time, decode included) and tines' ratio to
    transformers'. transformers computes every prompt in full, so on select-only workloads
    (mmlu, hellaswag) its figure is its one-call prefill rate; tines' counts only what its
    cache did not hold."""
    groups = by_workload(ms)
    systems = list(dict.fromkeys(m.system for m in ms))
    head = f"{'computed tok/s':16} " + " ".join(f"{s:>18}" for s in systems) + \
        f" {'tines/hf':>9}"
    lines = [head, "-" * len(head)]
    for wl, rows in groups.items():
        cells = " ".join(f"{rows[s].computed_tok_per_s:18.1f}" if s in rows else f"{'':18}"
                         for s in systems)
        ratio = computed_rate(rows)
        lines.append(f"{wl:16} {cells} {'' if ratio is None else f'{ratio:8.2f}x':>9}")
    return "\n".join(lines)


def memory_table(peaks: dict[str, int]) -> str:
    """Peak RSS of each system's own process (loading, probe and every workload included)
    and its ratio to llama.cpp's."""
    ref = peaks.get(LLAMA)
    lines = [f"{'peak RSS':18} {'MiB':>8} {'x llama.cpp':>11}"]
    for system, peak in peaks.items():
        ratio = f"{peak / ref:10.2f}x" if ref else ""
        lines.append(f"{system:18} {peak / 2**20:8.0f} {ratio:>11}")
    return "\n".join(lines)


def notes(ms: Sequence[Measurement]) -> str:
    """Per system: how it ran (its distinct notes) and the load average seen at the end of
    its workloads (2 cores: above ~2.5 means another process was competing)."""
    lines = []
    for system in dict.fromkeys(m.system for m in ms):
        mine = [m for m in ms if m.system == system]
        loads = [float(n.split()[2]) for m in mine for n in m.notes if n.startswith("load avg")]
        seen = dict.fromkeys(n for m in mine for n in m.notes
                             if not n.startswith(("load avg", "cache hit tokens")))
        load = f"load avg {min(loads):.1f}-{max(loads):.1f}" if loads else ""
        lines.append(f"{system}: " + "; ".join([*seen, load]))
    return "\n".join(lines)


def write_json(path: Path, ms: Sequence[Measurement], meta: dict[str, Any]) -> None:
    rows = []
    for m in ms:
        ref = by_workload(ms)[m.workload].get(TINES)
        rows.append({
            "system": m.system, "workload": m.workload, "n": m.n, "seconds": m.seconds,
            "valid": m.valid, "programs_per_s": m.programs_per_s,
            "output_tokens_per_s": m.output_tok_per_s, "prompt_tokens": m.tally.prompt_tokens,
            "computed_prompt_tokens": m.tally.computed_tokens,
            "output_tokens": m.tally.output_tokens, "cache_hit_rate": m.tally.hit_rate,
            "computed_tokens_per_s": m.computed_tok_per_s,
            "computed_rate_vs_transformers": (computed_rate(by_workload(ms)[m.workload])
                                              if m.system == TINES else None),
            "peak_rss_bytes": m.peak_rss_bytes,
            "tines_speedup": (ref.programs_per_s / m.programs_per_s
                              if ref is not None and m.programs_per_s else None),
            "answers_equal_to_tines": agreement(m, ref), "notes": m.notes, "answers": m.answers,
        })
    doc = {**meta, "results": rows}
    path.write_text(json.dumps(doc, indent=1, default=str))


def write_chart(path: Path, ms: Sequence[Measurement], title: str) -> str | None:
    """Programs/s per workload and system (log scale), and tines' speed-up over each other
    system. Returns None, or why no chart was drawn."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (`make bench-peers`)"
    groups = by_workload(ms)
    workloads = list(groups)
    systems = list(dict.fromkeys(m.system for m in ms))
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5.5))
    width = 0.8 / max(1, len(systems))
    for k, system in enumerate(systems):
        xs = [i + k * width for i, wl in enumerate(workloads) if system in groups[wl]]
        ys = [groups[wl][system].programs_per_s for wl in workloads if system in groups[wl]]
        left.bar(xs, ys, width, label=system)
    _axes(left, workloads, width * (len(systems) - 1) / 2, "programs / s (log)")
    left.legend(fontsize=8)
    peers = [s for s in systems if s != TINES]
    width = 0.8 / max(1, len(peers))
    for k, system in enumerate(peers):
        pairs = [(i, groups[wl]) for i, wl in enumerate(workloads)
                 if system in groups[wl] and TINES in groups[wl]]
        xs = [i + k * width for i, _ in pairs]
        ys = [g[TINES].programs_per_s / g[system].programs_per_s for _, g in pairs]
        bars = right.bar(xs, ys, width, label=f"vs {system}")
        right.bar_label(bars, labels=[f"{y:.1f}x" for y in ys], fontsize=7)
    right.axhline(1.0, color="black", linewidth=0.8)
    _axes(right, workloads, width * (len(peers) - 1) / 2, "tines speed-up (log; >1 = tines ahead)")
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _axes(ax: Any, workloads: list[str], shift: float, ylabel: str) -> None:
    ax.set_yscale("log")
    ax.set_xticks([i + shift for i in range(len(workloads))])
    ax.set_xticklabels(workloads, rotation=20, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
