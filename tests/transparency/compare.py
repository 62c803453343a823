"""Compare the outcomes of FastAPI's suite, plain and instrumented: print every difference.

Usage: ``python -m tests.transparency.compare PLAIN.json INSTRUMENTED.json STATS.json``.
Exits 1 when a test that passed plain did not pass instrumented, or when the
instrumented run instrumented no app or wrote no access record.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path


def _load(path: str) -> dict[str, str]:
    outcomes: dict[str, str] = json.loads(Path(path).read_text(encoding="utf-8"))
    return outcomes


def compare(plain: dict[str, str], instrumented: dict[str, str], counts: dict[str, int]) -> list[str]:
    """Return the report's lines; the first says whether the run failed."""
    broke = sorted(test for test, outcome in plain.items() if outcome == "passed" and instrumented.get(test) != "passed")
    other = sorted(
        test for test in plain.keys() | instrumented.keys() if plain.get(test) != instrumented.get(test) and test not in broke
    )
    vacuous = not counts.get("apps instrumented") or not counts.get("access records")
    lines = ["FAILED" if broke or vacuous else "OK"]
    for label, outcomes in (("plain", plain), ("instrumented", instrumented)):
        tally = dict(sorted(collections.Counter(outcomes.values()).items()))
        lines.append(f"{label}: {tally}, {len(outcomes)} tests")
    lines.append(f"instrumented run: {counts.get('apps instrumented', 0)} apps, {counts.get('access records', 0)} access records")
    lines.append(f"passed plain, not passed instrumented: {len(broke)}")
    lines.extend(f"  {instrumented.get(test, 'missing')}\t{test}" for test in broke)
    lines.append(f"other differences: {len(other)}")
    lines.extend(f"  {plain.get(test, 'missing')} -> {instrumented.get(test, 'missing')}\t{test}" for test in other)
    return lines


def main(argv: list[str]) -> int:
    plain, instrumented = _load(argv[0]), _load(argv[1])
    counts: dict[str, int] = json.loads(Path(argv[2]).read_text(encoding="utf-8"))
    lines = compare(plain, instrumented, counts)
    print("\n".join(lines[1:]))
    return 0 if lines[0] == "OK" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
