#!/usr/bin/env python3
"""Verify an exported kriselogg incident (JSON Lines) with nothing but the standard library.

Usage: python3 verify_export.py incident.jsonl
  exit 0 "VALID n events, head <hash>"   every event is intact and linked
  exit 1 "INVALID at line n: ..."        a line that is no event
         "INVALID at seq s (line n): ..."   the first event that does not verify
         "INVALID: no events ..."       no line holds an event
  exit 2 (a message on stderr)           the file cannot be read
Independent of kriselogg's own code on purpose: anyone can read, copy or rewrite these lines.
`kriselogg verify` prints the very same lines for the same findings (tests/test_verifiers.py).
"""

from __future__ import annotations

import hashlib
import json
import reprlib
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

GENESIS_HASH = "0" * 64
FIRST_EVENT_TYPE = "IncidentReported"  # an incident always starts with its report


class Invalid(Exception):
    """The export is not an intact incident; the message is the line to print."""


class DuplicateKey(Exception):
    """Not a ValueError on purpose: it must not be mistaken for a JSON syntax error."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of duplicate keys, other parsers the first: the same line would show
    # another value elsewhere than the one that was hashed, so it must not verify.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                # ASCII only: a message must print even where stdout cannot encode the key.
                shown = reprlib.repr(key).encode("ascii", "backslashreplace").decode()
                raise DuplicateKey(f"the key {shown} appears twice")
            seen.add(key)
    return obj


def no_constant(name: str) -> NoReturn:
    # json.loads accepts NaN and Infinity, which are not JSON (RFC 8259): no export holds them.
    raise ValueError(f"{name} is not JSON")


def parse(number: int, raw: bytes) -> dict[str, Any]:
    """One line of the export as a JSON object; whether it is an intact event is checked later."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"INVALID at line {number}: not UTF-8") from None
    try:
        event = json.loads(text, parse_constant=no_constant, object_pairs_hook=unique_keys)
    except (ValueError, RecursionError):  # a syntax error, too many digits, nested too deep
        raise Invalid(f"INVALID at line {number}: not JSON") from None
    except DuplicateKey as exc:
        raise Invalid(f"INVALID at line {number}: {exc}") from None
    if not isinstance(event, dict):
        raise Invalid(f"INVALID at line {number}: not a JSON object")
    return event


def event_hash(event: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the event without its `hash` (README, steps 4 and 5)."""
    body = {k: v for k, v in event.items() if k != "hash"}
    # allow_nan=False: 1e400 parses as infinity, which canonical JSON cannot write.
    canonical = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def verify(lines: Iterable[bytes]) -> tuple[int, str]:
    """Check every line of `lines` (bytes each); return the count and head hash, or raise.

    The checks, and their order, are those of kriselogg's own verifier: the same export gets
    the same finding from both.
    """
    prev = GENESIS_HASH
    count = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue  # blank lines are skipped, but counted, so line numbers are the file's
        event = parse(number, raw)
        seq = count + 1
        where = f"INVALID at seq {seq} (line {number})"
        found = event.get("seq")
        # bool is an int in Python and True == 1 == 1.0: `"seq": true` or `1.0` is not seq 1.
        if isinstance(found, bool) or not isinstance(found, int):
            why = "seq is missing" if "seq" not in event else "seq is not an integer"
            raise Invalid(f"{where}: {why}")
        if found != seq:
            raise Invalid(f"{where}: expected seq {seq}, found {reprlib.repr(found)}")
        if event.get("prev_hash") != prev:
            raise Invalid(f"{where}: prev_hash does not link")
        try:
            digest = event_hash(event)
        except (ValueError, RecursionError):
            # Parsed, but no canonical JSON can be written for it (a lone surrogate "\ud800" is
            # not UTF-8; nested too deep for json.dumps): no hash can match it.
            raise Invalid(f"{where}: cannot be hashed as canonical JSON") from None
        if event.get("hash") != digest:
            raise Invalid(f"{where}: hash does not match content")
        if seq == 1 and event.get("type") != FIRST_EVENT_TYPE:
            raise Invalid(f"{where}: the first event is not {FIRST_EVENT_TYPE}")
        prev, count = digest, seq
    if count == 0:
        raise Invalid(f"INVALID: no events (an incident starts with {FIRST_EVENT_TYPE})")
    return count, prev


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0] if argv else 'verify_export.py'} EXPORT.jsonl", file=sys.stderr)
        return 2
    path = argv[1]
    try:
        # Binary lines end at b"\n" only, as the export writes them. Text mode or str.splitlines
        # would also split at U+2028, U+2029 and U+0085, which canonical JSON keeps raw inside
        # strings: a note containing one would cut its event in two.
        with open(path, "rb") as lines:
            count, head = verify(lines)
    except OSError as exc:
        print(f"verify_export: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Invalid as exc:
        print(exc)
        return 1
    print(f"VALID {count} events, head {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
