#!/usr/bin/env python3
"""Verify an exported kriselogg incident (JSON Lines) with nothing but the standard library.

Usage: python3 verify_export.py incident.jsonl   -> exit 0 if intact, 1 with the first bad seq.
Independent of kriselogg's own code on purpose: anyone can read, copy or rewrite these lines.
"""

import hashlib
import json
import sys


def main(path: str) -> int:
    prev = "0" * 64
    count = 0
    with open(path, encoding="utf-8") as fh:
        for seq, line in enumerate((ln for ln in fh if ln.strip()), start=1):
            event = json.loads(line)
            body = {k: v for k, v in event.items() if k != "hash"}
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
            if event.get("seq") != seq or event.get("prev_hash") != prev or event["hash"] != digest:
                print(f"INVALID at seq {seq}")
                return 1
            prev, count = digest, seq
    print(f"VALID {count} events, head {prev}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
