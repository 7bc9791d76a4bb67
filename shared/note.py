"""Signed checkpoints of the organisation's log, as public formats anyone can check.

- A checkpoint (c2sp.org/tlog-checkpoint) is three lines: the log's origin, the tree size in
  decimal, the root hash in standard base64.
- It is carried as a signed note (c2sp.org/signed-note): the text, a blank line, then one line
  per signature, `— <key name> <base64(key id ‖ Ed25519 signature)>`. The key id is the first four
  bytes of SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key); the verifier key is written
  `<name>+<key id in hex>+<base64(0x01 ‖ public key)>`: Go's golang.org/x/mod/sumdb/note reads
  both as they are.
- A witness may add a cosignature (c2sp.org/tlog-cosignature, signature type 0x04): it signs
  "cosignature/v1\\ntime <unix seconds>\\n" followed by the checkpoint text, and its signature is
  key id ‖ the time as 8 bytes big-endian ‖ the Ed25519 signature.

Signing uses `cryptography`; verifying does too here (scripts/verify_export.py keeps a pure-Python
Ed25519 check for machines without it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014"  # the em dash that opens a signature line
_NAME = re.compile(r"^[^\s+]+$")


class NoteError(ValueError):
    """A note, checkpoint, key or signature that is malformed or does not verify."""


def key_id(name: str, alg: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise NoteError(f"a key name has no spaces and no '+': {name!r}")
    return name


@dataclass(frozen=True)
class Verifier:
    """A public key that can check signatures in notes."""

    name: str
    alg: int
    public: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.alg, self.public)

    def line(self) -> str:
        """The verifier key as the signed-note spec writes it."""
        encoded = base64.b64encode(bytes([self.alg]) + self.public).decode()
        return f"{self.name}+{self.id.hex()}+{encoded}"

    def check(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_verifier(line: str) -> Verifier:
    parts = line.strip().split("+", 2)  # the base64 key may hold "+" itself
    if len(parts) != 3:
        raise NoteError("a verifier key is <name>+<key id>+<base64 key>")
    name, hex_id, encoded = parts
    _check_name(name)
    try:
        raw = base64.b64decode(encoded, validate=True)
        wanted = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise NoteError("the verifier key is not valid hex and base64") from None
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("only Ed25519 verifier keys (types 0x01 and 0x04) are known")
    verifier = Verifier(name, raw[0], raw[1:])
    if verifier.id != wanted:
        raise NoteError("the key id does not match the key")
    return verifier


class Signer:
    """An Ed25519 signing key with its name (the private half never leaves the service)."""

    def __init__(self, name: str, private: Ed25519PrivateKey, alg: int = ED25519) -> None:
        self.name = _check_name(name)
        self._private = private
        self.alg = alg
        public = private.public_key().public_bytes_raw()
        self.verifier = Verifier(name, alg, public)

    @classmethod
    def generate(cls, name: str, alg: int = ED25519) -> Signer:
        return cls(name, Ed25519PrivateKey.generate(), alg)

    @classmethod
    def from_seed(cls, name: str, seed: bytes, alg: int = ED25519) -> Signer:
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed), alg)

    def seed(self) -> bytes:
        return self._private.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


@dataclass(frozen=True)
class Signature:
    name: str
    key_hash: bytes  # the 4-byte key id
    raw: bytes  # what follows the key id: the signature (or time ‖ signature for cosignatures)

    def line(self) -> str:
        return f"{DASH} {self.name} {base64.b64encode(self.key_hash + self.raw).decode()}\n"


@dataclass(frozen=True)
class Note:
    text: str  # ends with a newline
    signatures: tuple[Signature, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def sign_note(text: str, *signers: Signer) -> str:
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("a note's text ends with a newline and has no blank line")
    message = text.encode()
    signatures = tuple(Signature(s.name, s.verifier.id, s.sign(message)) for s in signers)
    return Note(text, signatures).render()


def parse_note(note: str) -> Note:
    text, sep, block = note.rpartition("\n\n")
    if not sep or not block.endswith("\n"):
        raise NoteError("a signed note is text, a blank line and signature lines")
    signatures = []
    for line in block[:-1].split("\n"):
        prefix, _, rest = line.partition(" ")
        name, _, encoded = rest.partition(" ")
        if prefix != DASH or not name or not encoded or " " in encoded:
            raise NoteError("a signature line is '— <name> <base64>'")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError("a signature is not base64") from None
        if len(raw) < 5:
            raise NoteError("a signature is too short")
        signatures.append(Signature(name, raw[:4], raw[4:]))
    return Note(text + "\n", tuple(signatures))


def verified_by(note: Note, verifier: Verifier) -> bool:
    """Whether `note` carries a valid signature (type 0x01) by `verifier`."""
    message = note.text.encode()
    return any(
        s.name == verifier.name and s.key_hash == verifier.id and verifier.check(message, s.raw)
        for s in note.signatures
        if verifier.alg == ED25519
    )


# --- checkpoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(line + "\n" for line in [*lines, *self.extensions])


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint is origin, tree size and root hash, one per line")
    origin, size, root, *extensions = lines[:-1]
    if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise NoteError("the checkpoint's origin or tree size is malformed")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except binascii.Error:
        raise NoteError("the checkpoint's root hash is not base64") from None
    if len(root_hash) != 32:
        raise NoteError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def open_checkpoint(note_text: str, verifiers: list[Verifier]) -> tuple[Checkpoint, Verifier]:
    """The checkpoint in a signed note, and which of `verifiers` signed it; NoteError otherwise."""
    note = parse_note(note_text)
    for verifier in verifiers:
        if verified_by(note, verifier):
            return parse_checkpoint(note.text), verifier
    raise NoteError("no trusted key signed this checkpoint")


# --- cosignatures (c2sp.org/tlog-cosignature) ------------------------------------------------


def _cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_text.encode()


def cosign(checkpoint_text: str, signer: Signer, timestamp: int) -> Signature:
    if signer.alg != COSIGNATURE_V1:
        raise NoteError("a cosigning key has type 0x04")
    raw_time = timestamp.to_bytes(8, "big")
    return Signature(
        signer.name,
        signer.verifier.id,
        raw_time + signer.sign(_cosigned_message(checkpoint_text, timestamp)),
    )


def cosigned_by(note: Note, verifier: Verifier) -> int | None:
    """The time a witness cosigned `note` at, or None when it carries no valid cosignature."""
    if verifier.alg != COSIGNATURE_V1:
        return None
    for s in note.signatures:
        if s.name != verifier.name or s.key_hash != verifier.id or len(s.raw) != 72:
            continue
        timestamp = int.from_bytes(s.raw[:8], "big")
        if verifier.check(_cosigned_message(note.text, timestamp), s.raw[8:]):
            return timestamp
    return None
