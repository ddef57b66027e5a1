"""Run every benchmark in this folder (each module with a `main()`), one after another.

Each runs as `python -m medfed.simulations.benchmarks.NAME` from the repository root, and its
table is printed under a heading. A benchmark that fails gets a line saying so, and the exit
status is 1 when any failed; with --quick, one without a --quick option is skipped, out loud.
Run: python -m medfed.simulations.benchmarks.run_all [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
ROOT = FOLDER.parents[1]  # the repository root: benchmarks read configs/ relative to it
PACKAGE = "medfed.simulations.benchmarks"
SELF = Path(__file__).stem


@dataclass(frozen=True)
class Benchmark:
    name: str
    takes_quick: bool  # whether its command line has a --quick flag


def benchmarks(folder: Path = FOLDER) -> list[Benchmark]:
    """Modules of `folder` defining a top-level `main()` (read, not imported), by name."""
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.stem.startswith("_") or path.stem == SELF:
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            found.append(Benchmark(path.stem, '"--quick"' in source))
    return found


def run(benchmark: Benchmark, quick: bool, timeout_s: float) -> bool:
    """Run one benchmark, print its output under a heading; False when it failed."""
    print(f"\n## {benchmark.name}\n", flush=True)
    command = [sys.executable, "-m", f"{PACKAGE}.{benchmark.name}", *(["--quick"] if quick else [])]
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        print(f"FAILED: {benchmark.name} ran past {timeout_s:g} s")
        return False
    print(result.stdout.rstrip())
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        print(f"\nFAILED: {benchmark.name} exited with {result.returncode}:\n```\n{tail}\n```")
        return False
    print(f"\n_{benchmark.name}: {seconds:.1f} s_", flush=True)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--timeout-s", type=float, default=3600, help="limit per benchmark")
    args = parser.parse_args(argv)
    found = benchmarks()
    if args.only:
        unknown = sorted(set(args.only) - {b.name for b in found})
        if unknown:
            names = ", ".join(b.name for b in found)
            print(f"unknown benchmark(s): {', '.join(unknown)} (choose from {names})")
            return 2
        found = [b for b in found if b.name in args.only]
    skipped = [b.name for b in found if args.quick and not b.takes_quick]
    print(f"# medfed benchmarks: {', '.join(b.name for b in found)}")
    for name in skipped:
        print(f"\nSKIPPED: {name} has no --quick option (run without --quick to include it)")
    runnable = [b for b in found if b.name not in skipped]
    failed = [b.name for b in runnable if not run(b, args.quick, args.timeout_s)]
    print(f"\n{len(runnable) - len(failed)} of {len(found)} benchmarks succeeded", end="")
    print(f"; failed: {', '.join(failed) or 'none'}; skipped: {', '.join(skipped) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
