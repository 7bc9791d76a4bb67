"""The organisation's Merkle tree follows RFC 9162 §2.1 to the byte, so any verifier agrees.

Checked against the RFC's own recursive definition of MTH, PATH and PROOF (§2.1.1, §2.1.3.1,
§2.1.4.1), written here as plainly as the RFC states them, for every tree size up to 70 and
every leaf and old size in it; and the verifying side (§2.1.3.2, §2.1.4.2) must refuse a proof
that was altered in any hash, or shown for another size.
"""

from __future__ import annotations

import hashlib

import pytest

from shared.merkle import (
    EMPTY_ROOT,
    Tree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

DATA = [f"event {i}".encode() for i in range(70)]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return leaf_hash(d[0])
    k = _k(len(d))
    return node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if whole else [mth(d)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, d[:k], whole), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Tree(leaf_hash(x) for x in DATA)


def test_hashing_is_rfc9162_with_domain_separation() -> None:
    # RFC 9162 §2.1.1: 0x00 before a leaf, 0x01 before two children; the empty tree is SHA-256("").
    assert leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
    assert (
        node_hash(b"l" * 32, b"r" * 32) == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()
    )
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert Tree().root() == EMPTY_ROOT


def test_roots_and_proofs_match_the_rfc_definitions_for_every_size(tree: Tree) -> None:
    for n in range(71):
        assert tree.root(n) == mth(DATA[:n]), n
        for i in range(n):
            proof = tree.inclusion_proof(i, n)
            assert proof == path(i, DATA[:n]), (i, n)
            assert verify_inclusion(i, n, leaf_hash(DATA[i]), proof, tree.root(n))
        for m in range(1, n):
            proof = tree.consistency_proof(m, n)
            assert proof == subproof(m, DATA[:n], True), (m, n)
            assert verify_consistency(m, n, tree.root(m), tree.root(n), proof)


def test_an_altered_proof_or_leaf_is_refused(tree: Tree) -> None:
    n, i = 70, 37
    root = tree.root(n)
    proof = tree.inclusion_proof(i, n)
    assert not verify_inclusion(i, n, leaf_hash(b"edited event"), proof, root)
    assert not verify_inclusion(i + 1, n, leaf_hash(DATA[i]), proof, root)
    # The size is bound by the signed checkpoint, not by the proof: where the path has the same
    # shape in two sizes it verifies in both, so a verifier must take the size from the note.
    assert not verify_inclusion(69, 69, leaf_hash(DATA[69]), tree.inclusion_proof(69, 70), root)
    assert not verify_inclusion(i, n, leaf_hash(DATA[i]), proof[:-1], root)
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = bytes(32)
        assert not verify_inclusion(i, n, leaf_hash(DATA[i]), bad, root)
    consistency = tree.consistency_proof(21, n)
    for k in range(len(consistency)):
        bad = list(consistency)
        bad[k] = bytes(32)
        assert not verify_consistency(21, n, tree.root(21), root, bad)


def test_a_rewritten_history_is_not_consistent_with_the_old_root(tree: Tree) -> None:
    # Someone rewrites event 5 and rebuilds the tree: the new tree proves nothing about the old
    # root, whatever proof it offers.
    rewritten = Tree(leaf_hash(b"forged" if i == 5 else x) for i, x in enumerate(DATA))
    old_root = tree.root(30)
    assert rewritten.root(30) != old_root
    proof = rewritten.consistency_proof(30, 70)
    assert not verify_consistency(30, 70, old_root, rewritten.root(70), proof)
    # Shrinking is never consistent, and the same size with another root neither.
    assert not verify_consistency(30, 29, old_root, tree.root(29), [])
    assert not verify_consistency(30, 30, old_root, rewritten.root(30), [])


def test_bad_sizes_are_refused_not_answered(tree: Tree) -> None:
    with pytest.raises(ValueError, match="no leaf 70"):
        tree.inclusion_proof(70, 70)
    with pytest.raises(ValueError, match="no leaf 0 in a tree of 71"):
        tree.inclusion_proof(0, 71)
    with pytest.raises(ValueError, match="no consistency from 10 to 71"):
        tree.consistency_proof(10, 71)
    with pytest.raises(ValueError, match="the tree has 70 leaves"):
        tree.root(71)
