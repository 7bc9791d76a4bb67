"""Issue 17, items 3 and 6: what a witness concludes from checkpoints, in every case.

The log here is a real RFC 9162 tree signed with a real key; the witness code is the one
`kriselogg witness` runs, with the log's consistency proofs handed in directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.merkle import Tree, leaf_hash
from shared.note import Checkpoint, Signer, open_checkpoint, sign_note
from shared.witness import WitnessAlarm, WitnessError, WitnessState, check_against, witness

ORIGIN = "kriselogg.local/demo"


def signed(tree: Tree, signer: Signer, size: int | None = None) -> str:
    size = tree.size if size is None else size
    return sign_note(Checkpoint(ORIGIN, size, tree.root(size)).text(), signer)


def log(events: int, *, forged_at: int | None = None) -> Tree:
    return Tree(
        leaf_hash(b"forged" if i == forged_at else f"event {i}".encode()) for i in range(events)
    )


@pytest.fixture
def key() -> Signer:
    return Signer.generate("kriselogg.local")


def test_growth_is_accepted_and_kept(tmp_path: Path, key: Signer) -> None:
    honest = log(40)
    state = WitnessState(tmp_path)
    first = witness(state, None, note=signed(honest, key, 25), trusted=[key.verifier])
    assert (first.checkpoint.size, first.previous) == (25, None)
    proofs: list[tuple[int, int]] = []

    def prove(old: int, new: int) -> list[bytes]:
        proofs.append((old, new))
        return honest.consistency_proof(old, new)

    checkpoint = witness(state, None, note=signed(honest, key), prove=prove).checkpoint
    assert proofs == [(25, 40)]
    proofs.clear()
    assert checkpoint.size == 40
    assert (tmp_path / "latest").read_text().strip() == "40"
    # The same again, later: nothing to prove, nothing changed.
    assert check_against(state, checkpoint, prove) == 40
    assert proofs == []


def test_a_larger_checkpoint_needs_the_log_to_prove_it(tmp_path: Path, key: Signer) -> None:
    honest = log(40)
    state = WitnessState(tmp_path)
    witness(state, None, note=signed(honest, key, 25), trusted=[key.verifier])
    with pytest.raises(WitnessError, match="prove"):
        witness(state, None, note=signed(honest, key))


def test_two_witnesses_shown_different_logs_of_one_size_find_the_fork(
    tmp_path: Path, key: Signer
) -> None:
    # The operator shows the safety rep one log and the AMU leader another, both signed.
    rep, amu = WitnessState(tmp_path / "rep"), WitnessState(tmp_path / "amu")
    witness(rep, None, note=signed(log(30), key), trusted=[key.verifier])
    theirs = signed(log(30, forged_at=4), key)
    witness(amu, None, note=theirs, trusted=[key.verifier])  # fine on its own
    with pytest.raises(WitnessAlarm, match="splittet"):
        witness(rep, None, note=theirs)


def test_a_rewrite_from_an_earlier_point_re_signed_is_not_consistent(
    tmp_path: Path, key: Signer
) -> None:
    state = WitnessState(tmp_path)
    witness(state, None, note=signed(log(30), key), trusted=[key.verifier])
    rewritten = log(45, forged_at=12)
    note = signed(rewritten, key)
    checkpoint = open_checkpoint(note, [key.verifier])[0]
    with pytest.raises(WitnessAlarm, match="bygger ikke videre"):
        check_against(state, checkpoint, rewritten.consistency_proof)
    assert (tmp_path / "latest").read_text().strip() == "30"


def test_a_shrunk_log_and_a_foreign_key_are_caught(tmp_path: Path, key: Signer) -> None:
    state = WitnessState(tmp_path)
    witness(state, None, note=signed(log(30), key), trusted=[key.verifier])
    truncated = log(20, forged_at=19)  # the tail cut off, and the new last event rewritten
    with pytest.raises(WitnessAlarm, match="bygger ikke videre"):
        check_against(
            state,
            Checkpoint(ORIGIN, 20, truncated.root()),
            log(30).consistency_proof,
        )
    stranger = Signer.generate("kriselogg.local")
    with pytest.raises(WitnessAlarm, match="nøkkel du stoler på"):
        witness(state, None, note=signed(log(31), stranger))
