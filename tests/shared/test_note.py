"""Checkpoints are C2SP signed notes that Go's golang.org/x/mod/sumdb/note reads as they are.

The Go package's documentation signs one example text with one example key; kriselogg must
produce the same verifier key line and the same signature line byte for byte (Ed25519 is
deterministic), or a witness written in Go could not check our checkpoints.
"""

from __future__ import annotations

import base64

import pytest

from shared.note import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteError,
    Signer,
    cosign,
    cosigned_by,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    parse_verifier,
    sign_note,
    verified_by,
)

# From https://pkg.go.dev/golang.org/x/mod/sumdb/note (the package documentation's example).
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNATURE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdng"
    "otpRZb6KE6RyyBwJnAM=\n"
)


def go_signer() -> Signer:
    _, _, name, _, encoded = GO_SIGNER_KEY.split("+", 4)
    raw = base64.b64decode(encoded)
    assert raw[0] == 1  # Ed25519
    return Signer.from_seed(name, raw[1:])


def test_the_go_example_is_reproduced_byte_for_byte() -> None:
    signer = go_signer()
    assert signer.verifier.line() == GO_VERIFIER_KEY
    assert sign_note(GO_TEXT, signer) == GO_TEXT + "\n" + GO_SIGNATURE
    assert verified_by(parse_note(GO_TEXT + "\n" + GO_SIGNATURE), parse_verifier(GO_VERIFIER_KEY))


def test_a_checkpoint_round_trips_and_any_change_breaks_the_signature() -> None:
    signer = Signer.generate("kriselogg.local")
    checkpoint = Checkpoint("kriselogg.local/demo", 1234, bytes(range(32)))
    text = checkpoint.text()
    assert text == "kriselogg.local/demo\n1234\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    signed = sign_note(text, signer)
    assert open_checkpoint(signed, [signer.verifier]) == (checkpoint, signer.verifier)
    forged = signed.replace("\n1234\n", "\n1233\n")
    with pytest.raises(NoteError):
        open_checkpoint(forged, [signer.verifier])
    with pytest.raises(NoteError):  # signed, but by a key the reader does not trust
        open_checkpoint(signed, [Signer.generate("kriselogg.local").verifier])


def test_a_rotation_signs_with_both_keys() -> None:
    old, new = Signer.generate("kriselogg.local"), Signer.generate("kriselogg.local")
    signed = sign_note(Checkpoint("kriselogg.local/demo", 1, bytes(32)).text(), old, new)
    assert open_checkpoint(signed, [old.verifier])[1] == old.verifier
    assert open_checkpoint(signed, [new.verifier])[1] == new.verifier


@pytest.mark.parametrize(
    "text",
    [
        "kriselogg.local/demo\n-1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "kriselogg.local/demo\n01\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "kriselogg.local/demo\n1\nAAEC\n",
        "kriselogg.local/demo\n1\n",
        "kriselogg.local/demo\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


def test_a_witness_cosignature_is_c2sp_tlog_cosignature() -> None:
    witness = Signer.generate("verneombud.example", alg=COSIGNATURE_V1)
    signer = Signer.generate("kriselogg.local")
    text = Checkpoint("kriselogg.local/demo", 7, bytes(32)).text()
    signed = parse_note(sign_note(text, signer))
    line = cosign(text, witness, 1_790_000_000)
    both = parse_note(signed.render() + line.line())
    assert base64.b64decode(witness.verifier.line().split("+", 2)[2])[0] == 0x04
    assert cosigned_by(both, witness.verifier) == 1_790_000_000
    assert verified_by(both, signer.verifier)
    assert cosigned_by(signed, witness.verifier) is None
