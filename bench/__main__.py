"""`make bench`: runs every benchmark in turn; each prints its own table beside its reference.

`python -m bench NAME…` runs only the named ones (audience, compose, delivery, tracking)."""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = ("audience", "compose", "delivery", "tracking")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"Neznámý benchmark: {', '.join(unknown)}; k dispozici: {', '.join(BENCHMARKS)}")
        return 2
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        importlib.import_module(f"bench.{name}").main([])
        print(f"({name}: {time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
