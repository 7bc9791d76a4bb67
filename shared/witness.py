"""`kriselogg witness`: a safety rep's own check that the log only ever grows.

Run on the witness's own machine, with a read-only witness token. Each run fetches the signed
checkpoint, checks its signature with the keys the witness trusts, asks the log to prove that it
extends the last checkpoint this witness accepted (RFC 9162 consistency), and keeps the new one.
Whoever controls the servers can rewrite the events, the tree and even sign a new checkpoint with
the log's own key, but cannot make a rewritten log consistent with a checkpoint a witness kept:
that is reported here, loudly, and the run exits 1.

The state directory holds `keys` (trusted verifier key lines), `<size>.note` for every checkpoint
accepted, and `latest` (the size of the newest). Files are written whole or not at all.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.merkle import verify_consistency
from shared.note import Checkpoint, NoteError, Verifier, open_checkpoint, parse_verifier

OK, TAMPERED, USAGE, UNREACHABLE = 0, 1, 2, 3

ALARM = """
!!! ADVARSEL: LOGGEN ER ENDRET ELLER SPLITTET !!!
{what}
Det betyr at noen har endret, slettet eller skrevet om hendelser i krisehåndteringsloggen etter at
du sist kontrollerte den, eller viser ulike versjoner av den til ulike personer.
Gjør dette nå:
  1. Ta vare på denne mappen ({state}) og e-postene med kontrollsummer, uendret.
  2. Si fra til arbeidsmiljøutvalget (AMU), og vurder å varsle Arbeidstilsynet.
  3. Ikke stol på loggen fra denne tjenesten før det er forklart.
"""


ConsistencyProver = Callable[[int, int], list[bytes]]  # (old size, new size) -> the proof


class WitnessAlarm(Exception):
    """The log is not what this witness saw before: forked, shrunk, rewritten or badly signed."""


class WitnessError(Exception):
    """The log could not be asked (network, token, answer format): nothing is known either way."""


@dataclass(frozen=True)
class Accepted:
    checkpoint: Checkpoint
    previous: int | None  # the size this witness held before, None on the first run
    key: Verifier
    first_key: bool  # the key was trusted on first use in this run


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


class WitnessState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def keys(self) -> list[Verifier]:
        path = self.directory / "keys"
        if not path.exists():
            return []
        return [parse_verifier(line) for line in path.read_text().splitlines() if line.strip()]

    def trust(self, verifier: Verifier) -> None:
        lines = [v.line() for v in self.keys()]
        if verifier.line() not in lines:
            _write(self.directory / "keys", "".join(f"{x}\n" for x in [*lines, verifier.line()]))

    def latest(self) -> tuple[Checkpoint, str] | None:
        marker = self.directory / "latest"
        if not marker.exists():
            return None
        return self.stored(int(marker.read_text().strip()))

    def stored(self, size: int) -> tuple[Checkpoint, str] | None:
        path = self.directory / f"{size}.note"
        if not path.exists():
            return None
        note = path.read_text(encoding="utf-8")
        return open_checkpoint(note, self.keys())[0], note

    def keep(self, checkpoint: Checkpoint, note: str) -> None:
        _write(self.directory / f"{checkpoint.size}.note", note)
        _write(self.directory / "latest", f"{checkpoint.size}\n")


def check_against(
    state: WitnessState,
    checkpoint: Checkpoint,
    prove: ConsistencyProver | None,
) -> int | None:
    """Compare a signed checkpoint with what this witness holds; raise WitnessAlarm if it lies.

    Returns the size held before (None if nothing was held). `prove(old, new)` asks the log for a
    consistency proof; without it a larger checkpoint cannot be checked (WitnessError).
    """
    held = state.latest()
    if held is None:
        return None
    old, _ = held
    if checkpoint.origin != old.origin:
        raise WitnessAlarm(f"Loggen kaller seg nå {checkpoint.origin!r}, før {old.origin!r}.")
    same = state.stored(checkpoint.size)
    if same is not None and same[0].root != checkpoint.root:
        raise WitnessAlarm(
            f"To ulike kontrollsummer for de samme {checkpoint.size} hendelsene (en splittet logg)."
        )
    if checkpoint.size < old.size:
        if same is None:
            if prove is None:
                raise WitnessError("a smaller checkpoint needs the log to prove it")
            _consistent(prove, checkpoint, old)
        return old.size
    if checkpoint.size == old.size:
        if checkpoint.root != old.root:
            raise WitnessAlarm(
                f"To ulike kontrollsummer for de samme {old.size} hendelsene (en splittet logg)."
            )
        return old.size
    if prove is None:
        raise WitnessError("a larger checkpoint needs the log to prove that it extends the last")
    _consistent(prove, old, checkpoint)
    return old.size


def _consistent(prove: ConsistencyProver, old: Checkpoint, new: Checkpoint) -> None:
    proof = prove(old.size, new.size)
    if not verify_consistency(old.size, new.size, old.root, new.root, proof):
        raise WitnessAlarm(
            f"Loggen med {new.size} hendelser bygger ikke videre på den med {old.size} som du "
            "kontrollerte før: hendelser er endret eller slettet."
        )


class LogClient:
    def __init__(self, url: str, token: str, timeout: float = 20.0) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def _get(self, path: str, **params: int) -> httpx.Response:
        try:
            response = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise WitnessError(f"could not reach the log ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise WitnessError(f"the log answered {response.status_code} on {path}")
        return response

    def checkpoint(self) -> str:
        return self._get("/api/v1/log/checkpoint").text

    def key(self) -> Verifier:
        try:
            return parse_verifier(self._get("/api/v1/log/key").text)
        except NoteError as exc:
            raise WitnessError(f"the log's key is malformed ({exc})") from exc

    def prove(self, old: int, new: int) -> list[bytes]:
        body = self._get("/api/v1/log/proof/consistency", **{"from": old, "to": new}).json()
        try:
            return [base64.b64decode(p, validate=True) for p in body["proof"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise WitnessError("the consistency proof is malformed") from exc

    def close(self) -> None:
        self.http.close()


def witness(
    state: WitnessState, client: LogClient | None, *, note: str | None = None,
    trusted: list[Verifier] | None = None, prove: ConsistencyProver | None = None,
) -> Accepted:  # fmt: skip
    """One run: fetch (or take `note`), check, keep. WitnessAlarm / WitnessError otherwise."""
    first_key = False
    for verifier in trusted or []:
        state.trust(verifier)
    if not state.keys():
        if client is None:
            raise WitnessError("no trusted key yet: give --key, or --url for the first run")
        state.trust(client.key())
        first_key = True
    if note is None:
        assert client is not None
        note = client.checkpoint()
    try:
        checkpoint, key = open_checkpoint(note, state.keys())
    except NoteError as exc:
        raise WitnessAlarm(
            f"Kontrollsummen er ikke signert med en nøkkel du stoler på ({exc})."
        ) from exc
    previous = check_against(state, checkpoint, prove or (client.prove if client else None))
    if previous is None or checkpoint.size >= previous:
        state.keep(checkpoint, note)  # an older one, checked, does not become the latest
    return Accepted(checkpoint, previous, key, first_key)
