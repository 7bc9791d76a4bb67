"""The organisation's log: checkpoint, proof and append costs at 10k, 100k and 1M leaves.

    python bench/merkle.py [--sizes 10000 100000 1000000] [--events 2000]

Prints, per tree size: the time to build the tree from its leaves (what a restart does), to sign
a checkpoint (root + Ed25519 note), and the median and p99 of an inclusion and a consistency
proof and of verifying each (1,000 random ones). Then the cost the tree adds per event: an
incident of N events appended through IncidentLog on SQLite, and the time OrgLogs takes to read,
hash and store the same events into the tree (done beside the request, in its own thread).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.merkle import Tree, leaf_hash, verify_consistency, verify_inclusion
from shared.note import Checkpoint, Signer, sign_note


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def tree_figures(size: int, rng: random.Random) -> None:
    start = time.perf_counter()
    tree = Tree(leaf_hash(i.to_bytes(8, "big")) for i in range(size))
    built = time.perf_counter() - start
    signer = Signer.generate("kriselogg.local")
    sign = timed(
        lambda: sign_note(Checkpoint("kriselogg.local/demo", size, tree.root()).text(), signer), 50
    )
    root = tree.root()
    indexes = [rng.randrange(size) for _ in range(1000)]
    olds = [rng.randrange(1, size) for _ in range(1000)]
    it = iter(indexes)
    incl = timed(lambda: tree.inclusion_proof(next(it), size), 1000)
    it2 = iter(olds)
    cons = timed(lambda: tree.consistency_proof(next(it2), size), 1000)
    proofs = [(i, tree.inclusion_proof(i, size)) for i in indexes[:200]]
    pit = iter(proofs)

    def check_inclusion() -> None:
        i, p = next(pit)
        assert verify_inclusion(i, size, tree.leaf(i), p, root)

    vincl = timed(check_inclusion, 200)
    cproofs = [(m, tree.root(m), tree.consistency_proof(m, size)) for m in olds[:200]]
    cit = iter(cproofs)

    def check_consistency() -> None:
        m, old_root, p = next(cit)
        assert verify_consistency(m, size, old_root, root, p)

    vcons = timed(check_consistency, 200)
    print(
        f"{size:>9,} leaves | build {built:6.2f} s | checkpoint {sign[0]:.3f} ms | "
        f"inclusion {incl[0]:.3f}/{incl[1]:.3f} ms (verify {vincl[0]:.3f}) | "
        f"consistency {cons[0]:.3f}/{cons[1]:.3f} ms (verify {vcons[0]:.3f}) | "
        f"{len(proofs[0][1])} hashes"
    )


def append_overhead(events: int) -> None:
    from services.incidents.settings import IncidentSettings
    from services.incidents.store import IncidentLog, LogKeys, OrgLogs

    actor = {"id": "p-ln", "name": "Lise Nord"}
    with tempfile.TemporaryDirectory() as tmp:
        store = IncidentLog(IncidentSettings(data_dir=Path(tmp)))
        incident = store.report(
            org_id="demo",
            actor=actor,
            data={"title": "x", "category": "vold-fysisk", "unit_id": "u-nord"},
        )
        start = time.perf_counter()
        for i in range(events - 1):
            store.append(incident.id, "demo", "NoteAdded", actor=actor, data={"text": f"Notat {i}"})
        appended = time.perf_counter() - start
        logs = OrgLogs(Path(tmp) / "log.sqlite", store, LogKeys(Path(tmp) / "keys", "k"), "k")
        start = time.perf_counter()
        logs.catch_up()
        taken_in = time.perf_counter() - start
        assert logs.tree("demo").size == events
        logs.close()
        store.close()
    print(
        f"append {events} events: {appended / events * 1e6:.0f} µs/event "
        f"({events / appended:.0f}/s); the tree takes them in at "
        f"{taken_in / events * 1e6:.0f} µs/event "
        f"(+{taken_in / appended * 100:.0f} % CPU beside the appends)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(17)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for size in args.sizes:
        tree_figures(size, rng)
    append_overhead(args.events)


if __name__ == "__main__":
    main()
