"""Run the benchmarks (all, or those named with ``--only``), print the figures and the verdicts; exit 1 on a miss."""

from __future__ import annotations

import argparse
import sys

from benchmarks import (
    bench_arq,
    bench_bridges,
    bench_celery,
    bench_context,
    bench_dramatiq,
    bench_enqueue,
    bench_fields,
    bench_logging,
    bench_middleware,
    bench_request_tax,
    bench_rq,
)

MODULES = {
    module.__name__.removeprefix("benchmarks.bench_"): module
    for module in (
        bench_context,
        bench_fields,
        bench_middleware,
        bench_logging,
        bench_request_tax,
        bench_enqueue,
        bench_bridges,
        bench_celery,
        bench_rq,
        bench_dramatiq,
        bench_arq,
    )
}
"""Every benchmark, by the name ``--only`` takes, in the order they run."""


def main() -> int:
    """Run the selected benchmarks and report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds per case")
    parser.add_argument(
        "--only", action="append", choices=list(MODULES), metavar="NAME", help=f"run only this one (repeatable): {', '.join(MODULES)}"
    )
    args = parser.parse_args()
    verdicts = []
    for name, module in MODULES.items():
        if args.only is None or name in args.only:
            verdicts.extend(module.run(args.rounds))
    print("\n## verdicts (medians)")
    for verdict in verdicts:
        print(verdict.line())
    return 0 if all(verdict.met for verdict in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
