#!/usr/bin/env python
"""Summarise a py-spy raw profile of a pipeline run: seconds per asset and its hottest leaf functions.

    .venv/bin/python bench/profile_summary.py bench/output/profile_100k.txt [--rate 10] [--top 8]
    .venv/bin/python bench/profile_summary.py after.txt --before before.txt   # the change per asset first

Input: ``py-spy record --format raw`` (collapsed stacks, ``frame;frame;...;leaf count``, root first),
e.g. as written by ``bench/bench_pipeline.py --profile``. Each sample is ``1 / rate`` seconds of one
Python thread that was not idle.

A sample belongs to an asset (a step) by, root to leaf:

* a frame ``bench_step[<asset>]``: bench_pipeline.py --profile runs each step of the in-process
  executor under a generator frame of that name, so everything the step does is charged to it;
* else (a profile taken without those frames) the first frame in ``churn_pipeline/assets/`` (the
  function's qualified name up to the first dot: ``scored_customers.<locals>.chunks`` ->
  ``scored_customers``), or "(IO manager)" for a frame of ``load_input`` / ``handle_output`` in
  ``churn_pipeline/resources/io_managers.py``;
* else "(worker and native threads)" for threads started by ``threading`` (joblib, thread pools) and
  samples without any Python frame (native threads: OpenMP of LightGBM, BLAS), "(benchmark's RSS
  sampler)" for the benchmark's memory sampler, "(imports)" when the stack is importing a module,
  "(other)" otherwise (Dagster's setup and bookkeeping, the benchmark itself); samples of other
  processes (``py-spy --subprocesses``) are "(subprocesses)".

Within a step, the phase: "load_input" under the IO manager's ``load_input``; under its
``handle_output``, "streamed compute" inside ``FrameChunks.__iter__`` (a streamed asset such as
``scored_customers`` producing its rows while they are written) and "write" for the rest; "compute"
under the asset's own functions; "type checks, dagster" for the rest of the step (output type checks against the
pandera schema, events, asset checks evaluated by Dagster).

Prints Markdown: seconds per asset split into load / compute / streamed compute / write, then per
asset the top leaf functions (where the CPU was) and the deepest ``churn_pipeline`` function above
them (which project code asked for it).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_STEP = re.compile(r"^bench_step\[(?P<asset>[^\]]+)\]$")
_PROCESS = re.compile(r"^process (?P<pid>\d+):")
PHASES = ("load_input", "compute", "streamed compute", "write", "type checks, dagster")
OTHER, IMPORTS, SUBPROCESSES, IO_MANAGER = "(other)", "(imports)", "(subprocesses)", "(IO manager)"
THREADS, SAMPLER = "(worker and native threads)", "(benchmark's RSS sampler, mostly waiting)"
NO_STACK = "(no Python stack)"
PSEUDO = (OTHER, IMPORTS, SUBPROCESSES, THREADS, SAMPLER)


@dataclass
class Frame:
    func: str
    file: str

    @property
    def label(self) -> str:
        return f"{self.func} ({_short(self.file)})" if self.file else self.func


def _short(path: str) -> str:
    """``.../site-packages/pandas/core/frame.py`` -> ``pandas/core/frame.py``."""
    for marker in ("site-packages/", "dist-packages/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def parse_frame(text: str) -> Frame:
    match = _FRAME.match(text)
    return Frame(match["func"], match["file"]) if match else Frame(text, "")


@dataclass
class AssetProfile:
    samples: Counter = field(default_factory=Counter)  # phase -> samples
    leaves: Counter = field(default_factory=Counter)  # leaf label -> samples
    project: Counter = field(default_factory=Counter)  # deepest churn_pipeline frame -> samples

    @property
    def total(self) -> int:
        return sum(self.samples.values())


def _is_project(frame: Frame) -> bool:
    return "churn_pipeline/" in frame.file and "churn_pipeline_tests/" not in frame.file


def _io_method(frame: Frame) -> str | None:
    if "churn_pipeline/resources/io_managers.py" in frame.file:
        method = frame.func.rsplit(".", 1)[-1]
        if method in ("load_input", "handle_output"):
            return method
    return None


def _phase(frames: list[Frame]) -> str:
    """Phase of a stack below its step frame."""
    for i, frame in enumerate(frames):
        method = _io_method(frame)
        if method == "load_input":
            return "load_input"
        if method == "handle_output":
            streamed = any(f.func.endswith("FrameChunks.__iter__") for f in frames[i + 1:])
            return "streamed compute" if streamed else "write"
        if "churn_pipeline/assets/" in frame.file:
            return "compute"
    return "type checks, dagster"


def attribute(frames: list[Frame]) -> tuple[str, str]:
    """(asset, phase) of one stack, root first."""
    for i, frame in enumerate(frames):
        step = _STEP.match(frame.func)
        if step:
            return step["asset"], _phase(frames[i + 1:])
    rest = "type checks, dagster"
    if any(f.func.startswith("RssSampler.") for f in frames):
        return SAMPLER, rest
    first = frames[0]
    if first.func == NO_STACK or (first.func.endswith("_bootstrap") and first.file.endswith("threading.py")):
        return THREADS, rest
    if any(f.func == "_find_and_load" for f in frames):
        return IMPORTS, rest
    for frame in frames:
        method = _io_method(frame)
        if method:
            return IO_MANAGER, _phase([frame])
        if "churn_pipeline/assets/" in frame.file and frame.func != "<module>":
            return frame.func.split(".", 1)[0], "compute"
    return OTHER, rest


def summarize(path: str | Path, rate: float = 10.0) -> tuple[dict[str, AssetProfile], int]:
    """Per asset profile and the total sample count of the main process (the one with most samples)."""
    stacks: list[tuple[str | None, list[str], int]] = []
    per_process: Counter = Counter()
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.rstrip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        parts = stack.split(";")
        pid = None
        process = _PROCESS.match(parts[0])
        if process:
            pid, parts = process["pid"], parts[1:]
        stacks.append((pid, parts, int(count)))
        per_process[pid] += int(count)
    main_pid = per_process.most_common(1)[0][0] if per_process else None
    profiles: dict[str, AssetProfile] = defaultdict(AssetProfile)
    for pid, parts, count in stacks:
        frames = [parse_frame(p) for p in parts if not p.startswith("thread (")] or [Frame(NO_STACK, "")]
        asset, phase = attribute(frames) if pid == main_pid else (SUBPROCESSES, "type checks, dagster")
        profile = profiles[asset]
        profile.samples[phase] += count
        profile.leaves[frames[-1].label] += count
        project = [f for f in frames if _is_project(f)]
        profile.project[project[-1].label if project else "(no churn_pipeline frame)"] += count
    return dict(profiles), sum(per_process.values())


def render(path: str | Path, rate: float = 10.0, top: int = 8, order: list[str] | None = None,
           walls: dict[str, float] | None = None) -> str:
    """Markdown summary of a raw profile; ``order``: assets in graph order (others follow by size);
    ``walls``: each step's wall seconds, if known, to show the time its thread was not on the CPU."""
    walls = walls or {}
    profiles, total = summarize(path, rate)
    if not profiles:
        return f"(no samples in {path})\n"
    known = [a for a in (order or []) if a in profiles]
    rest = sorted((a for a in profiles if a not in known), key=lambda a: -profiles[a].total)
    assets = known + rest
    lines = [f"Profile `{path}`: {total:,} samples at {rate:g} Hz = {total / rate:,.1f} thread-seconds "
             "(idle threads not sampled).", "",
             "| asset | sampled s | share | " + " | ".join(PHASES) + " |"
             + (" step wall s | not on CPU s |" if walls else ""),
             "|---|---:|---:|" + "---:|" * (len(PHASES) + (2 if walls else 0))]
    for asset in assets:
        p = profiles[asset]
        phases = [""] * len(PHASES) if asset in PSEUDO else \
            [f"{p.samples[ph] / rate:,.1f}" if p.samples[ph] else "" for ph in PHASES]
        wall = ""
        if walls:
            wall = (f" {walls[asset]:,.1f} | {max(walls[asset] - p.total / rate, 0):,.1f} |" if asset in walls
                    else "  |  |")
        lines.append(f"| {asset} | {p.total / rate:,.1f} | {p.total / total:.0%} | " + " | ".join(phases) + " |"
                     + wall)
    if walls:
        lines += ["", "not on CPU = the step's wall time minus its samples: its thread waited (database server, "
                  "disk, locks) or ran native threads py-spy does not see (LightGBM, BLAS)."]
    for asset in assets:
        p = profiles[asset]
        if p.total / total < 0.005:
            continue
        lines += ["", f"**{asset}**: {p.total / rate:,.1f} s; top leaf functions:", "",
                  "| leaf function | seconds | share of asset |", "|---|---:|---:|"]
        for label, count in p.leaves.most_common(top):
            lines.append(f"| `{label}` | {count / rate:,.1f} | {count / p.total:.0%} |")
        lines += ["", "deepest project frames: " + "; ".join(
            f"`{label}` {count / rate:,.1f} s" for label, count in p.project.most_common(3))]
    return "\n".join(lines) + "\n"


def compare(before: str | Path, after: str | Path, rate: float = 10.0, order: list[str] | None = None) -> str:
    """Markdown table: sampled seconds per asset and phase in two profiles (before and after a change)."""
    a, _ = summarize(before, rate)
    b, _ = summarize(after, rate)
    known = [x for x in (order or []) if x in a or x in b]
    rest = sorted((x for x in set(a) | set(b) if x not in known), key=lambda x: -(b.get(x) or a[x]).total)
    lines = [f"Before `{before}`, after `{after}` (sampled seconds; phases before → after):", "",
             "| asset | before s | after s | change | " + " | ".join(PHASES) + " |",
             "|---|---:|---:|---:|" + "---|" * len(PHASES)]
    empty = AssetProfile()
    for asset in known + rest:
        pa, pb = a.get(asset, empty), b.get(asset, empty)
        change = f"{(pb.total - pa.total) / pa.total:+.0%}" if pa.total else "new"
        phases = [""] * len(PHASES) if asset in PSEUDO else [
            f"{pa.samples[ph] / rate:,.1f} → {pb.samples[ph] / rate:,.1f}" if pa.samples[ph] or pb.samples[ph] else ""
            for ph in PHASES]
        lines.append(f"| {asset} | {pa.total / rate:,.1f} | {pb.total / rate:,.1f} | {change} | "
                     + " | ".join(phases) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", help="py-spy --format raw output")
    parser.add_argument("--rate", type=float, default=10.0, help="py-spy --rate of the recording (default 10)")
    parser.add_argument("--top", type=int, default=8, help="leaf functions per asset (default 8)")
    parser.add_argument("--before", help="an earlier profile: print seconds per asset before and after first")
    args = parser.parse_args()
    order = ["raw_customers", "clean_customers", "customer_features", "churn_model", "scored_customers", "churn_kpis"]
    if args.before:
        print(compare(args.before, args.profile, args.rate, order))
    print(render(args.profile, args.rate, args.top, order=order), end="")


if __name__ == "__main__":
    main()
