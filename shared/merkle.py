"""The organisation's Merkle tree over every event of every incident (RFC 9162 §2.1).

Standard library only, on purpose, like shared/canonical.py: the verifying half (`leaf_hash`,
`root_from_inclusion`, `verify_inclusion`, `verify_consistency`) is what a safety rep's own
witness and `kriselogg verify` run, and scripts/verify_export.py keeps an independent copy.

Hashing (RFC 9162 §2.1.1): a leaf is SHA-256(0x00 ‖ data), an inner node SHA-256(0x01 ‖ left ‖
right), the empty tree SHA-256(""). A leaf's data is one event exactly as one line of the export:
its canonical JSON, without the newline.

`Tree` keeps every complete, aligned subtree hash in memory (level k holds the hashes of the
2^k-leaf blocks), 64 bytes per leaf all told. The root of any size and every proof are then made of
O(log n) stored nodes, so proofs stay in microseconds at a million leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): where RFC 9162 splits a tree of n."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """An append-only Merkle tree. Not thread-safe: its owner serialises appends and reads."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def append(self, leaf: bytes) -> int:
        """Add a leaf hash (see `leaf_hash`); returns its index."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf is a 32-byte hash")
        index = self.size
        self._levels[0] += leaf
        level, position, current = 0, index, leaf
        # Each time the new leaf completes a left/right pair, the parent block is complete too.
        while position & 1:
            left = self._node(level, position - 1)
            current = node_hash(left, current)
            level, position = level + 1, position >> 1
            if len(self._levels) == level:
                self._levels.append(bytearray())
            self._levels[level] += current
        return index

    def leaf(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self._node(0, index)

    def _node(self, level: int, position: int) -> bytes:
        start = position * HASH_SIZE
        return bytes(self._levels[level][start : start + HASH_SIZE])

    def _hash(self, start: int, end: int) -> bytes:
        """MTH of the leaves [start, end); `start` is aligned to the block sizes RFC 9162 uses."""
        width = end - start
        if width == 0:
            return EMPTY_ROOT
        if width & (width - 1) == 0 and start % width == 0:
            level = width.bit_length() - 1
            return self._node(level, start >> level)
        k = _split(width)
        return node_hash(self._hash(start, start + k), self._hash(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {size}")
        return self._hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[0:size])."""
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no leaf {index} in a tree of {size} (of {self.size}) leaves")
        proof: list[bytes] = []
        start, end = 0, size
        # Walk down from the root; the sibling of each step goes to the front of the path.
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                proof.append(self._hash(start + k, end))
                end = start + k
            else:
                proof.append(self._hash(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(old, D[0:new])."""
        if not 0 <= old <= new <= self.size:
            raise ValueError(f"no consistency from {old} to {new} (the tree has {self.size})")
        if old in (0, new):
            return []
        return self._subproof(old, 0, new, True)

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [self._hash(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, whole), self._hash(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._hash(start, start + k)]


# --- verifying (RFC 9162 §2.1.3.2 and §2.1.4.2) ---------------------------------------------


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` leads to from `leaf` at `index`; ValueError if it cannot."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("the inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    try:
        return root_from_inclusion(index, size, leaf, proof) == root
    except ValueError:
        return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when the tree of `new_size` leaves with `new_root` extends the one of `old_size`."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof  # every tree extends the empty one
    if not proof:
        return False
    path = list(proof)
    # If old_size is a power of two, the old root is itself the first node of the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
