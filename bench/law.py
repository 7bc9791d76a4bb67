"""What the legal registry costs on the report path: deciding and dating the duties of one report.

notify calls `duties()` once per report and once per later facts entry, inside the consumer that
plans the alerts, so its cost adds to the time from report to the leader's alert. Measured for
the heaviest case (a death: every § 5-2, § 5-1, ftrl § 13-14, § 7-2 duty, plus sick leave and the
routine) and the commonest (a lesser injury), beside a floor: the same loop doing nothing but
building the facts dict.

Run from the repository root:  .venv/bin/python bench/law.py [--rounds 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.notify.domain import duties
from shared.law import registry

LEARNT = datetime(2026, 9, 8, 20, 5, tzinfo=UTC)
CASES: dict[str, dict[str, Any]] = {
    "death + sick leave (8 law duties, 3 routine)": {
        "death": True,
        "serious_injury": True,
        "sick_leave_from": "2026-09-09",
    },
    "lesser injury (3 law duties, 3 routine)": {"injury": True, "serious_injury": False},
    "no harm (routine only)": {"injury": False},
}


def per_call_us(rounds: int, call: Any) -> list[float]:
    """Five timed batches of `rounds` calls; microseconds per call in each batch."""
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            call()
        batches.append((time.perf_counter() - start) / rounds * 1e6)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    registry()  # loaded once per process, as in the service
    meetings = [date(2026, 10, 12), date(2026, 12, 7)]
    print(f"{'case':48} {'duties':>6} {'median µs':>10} {'min µs':>8} {'max µs':>8}")
    floor = per_call_us(args.rounds, lambda: dict(CASES["no harm (routine only)"]))
    for name, facts in CASES.items():

        def call(facts: dict[str, Any] = facts) -> list[Any]:
            return duties(
                occurred_at=LEARNT - timedelta(minutes=30),
                learnt_at=LEARNT,
                facts=facts,
                kind="arbeidsmiljo",
                routine=None,
                amu_meetings=meetings,
            )

        found = len(call())
        us = per_call_us(args.rounds, call)
        print(
            f"{name:48} {found:>6} {statistics.median(us):>10.1f} {min(us):>8.1f} {max(us):>8.1f}"
        )
    print(f"{'floor: build the facts dict':48} {'':>6} {statistics.median(floor):>10.2f}")


if __name__ == "__main__":
    main()
