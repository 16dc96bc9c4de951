"""The audit log's Merkle tree (app/core/merkle.py) against RFC 6962 / RFC 9162.

The published vectors are Certificate Transparency's RFC 6962 test data (the eight leaves and
their roots, and four consistency proofs), as kept in transparency-dev/merkle
(`testonly/constants.go`); the exhaustive checks build every tree of 1..20 leaves and compare
with the RFC's recursive definition written out here independently of the module."""

from __future__ import annotations

import hashlib

import pytest

from app.core.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    leaf_hash,
    node_hash,
    root,
    roots_at,
    verify_consistency,
)

CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_CONSISTENCY = {
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
CT_HASHES = [leaf_hash(entry) for entry in CT_LEAVES]


def reference_root(entries: list[bytes]) -> str:
    """MTH written straight from RFC 9162 §2.1.1, on the entries (not the module's leaves)."""
    if len(entries) == 1:
        return hashlib.sha256(b"\x00" + entries[0]).hexdigest()
    k = 1
    while k * 2 < len(entries):
        k *= 2
    left, right = reference_root(entries[:k]), reference_root(entries[k:])
    return hashlib.sha256(b"\x01" + bytes.fromhex(left) + bytes.fromhex(right)).hexdigest()


def entries(n: int) -> list[bytes]:
    return [f"synthetic audit event {i}".encode() for i in range(n)]


def check(first: int, second: int, first_root: str, second_root: str, proof: list[str]) -> None:
    verify_consistency(
        first=first, second=second, first_root=first_root, second_root=second_root, proof=proof
    )


def test_the_rfc_6962_roots() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").hexdigest()
    for n in range(1, 9):
        assert root(CT_HASHES[:n]) == CT_ROOTS[n - 1]
    assert roots_at(CT_HASHES, range(9)) == {0: EMPTY_ROOT} | {
        n: CT_ROOTS[n - 1] for n in range(1, 9)
    }


@pytest.mark.parametrize(("sizes", "expected"), list(CT_CONSISTENCY.items()))
def test_the_rfc_6962_consistency_proofs(sizes: tuple[int, int], expected: list[str]) -> None:
    first, second = sizes
    proof = consistency_proof(first, CT_HASHES[:second])
    assert proof == expected
    check(first, second, CT_ROOTS[first - 1], CT_ROOTS[second - 1], proof)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert a == hashlib.sha256(b"\x00a").hexdigest() != hashlib.sha256(b"a").hexdigest()
    # A two-leaf tree's root is not the leaf hash of the two leaf hashes concatenated.
    assert node_hash(a, b) != leaf_hash(bytes.fromhex(a) + bytes.fromhex(b))


def test_every_root_of_1_to_20_leaves_matches_the_rfc_definition() -> None:
    data = entries(20)
    leaves = [leaf_hash(entry) for entry in data]
    expected = {n: reference_root(data[:n]) for n in range(1, 21)}
    assert {n: root(leaves[:n]) for n in range(1, 21)} == expected
    assert roots_at(iter(leaves), range(1, 25)) == expected  # sizes past the end left out


def test_every_pair_of_sizes_up_to_20_proves_consistent() -> None:
    leaves = [leaf_hash(entry) for entry in entries(20)]
    for second in range(1, 21):
        for first in range(1, second + 1):
            proof = consistency_proof(first, leaves[:second])
            check(first, second, root(leaves[:first]), root(leaves[:second]), proof)
            # At most ceil(log2(second)) + 1 hashes (RFC 9162 §2.1.4.1).
            assert len(proof) <= second.bit_length() + 1


def test_every_pair_fails_against_a_rewritten_or_foreign_history() -> None:
    leaves = [leaf_hash(entry) for entry in entries(20)]
    for second in range(2, 21):
        for first in range(1, second):
            honest = consistency_proof(first, leaves[:second])
            first_root, second_root = root(leaves[:first]), root(leaves[:second])
            # One of the first `first` events rewritten, everything re-hashed: the new tree's
            # proof and root are internally consistent, but not with the old root.
            for changed in (0, first - 1):
                forged = list(leaves[:second])
                forged[changed] = leaf_hash(b"rewritten")
                proof = consistency_proof(first, forged)
                with pytest.raises(ProofError):
                    check(first, second, first_root, root(forged), proof)
            # The honest proof does not serve a different newer root...
            with pytest.raises(ProofError):
                check(first, second, first_root, leaf_hash(b"other"), honest)
            # ...nor does it hold with a hash dropped or added. (The sizes themselves are bound
            # to the roots by the checkpoints' signatures, not by the proof.)
            with pytest.raises(ProofError):
                check(first, second, first_root, second_root, honest[:-1])
            with pytest.raises(ProofError):
                check(first, second, first_root, second_root, [*honest, honest[-1]])
            # A flipped digit anywhere in the proof.
            for index in range(len(honest)):
                bent = list(honest)
                bent[index] = ("1" if bent[index][0] == "0" else "0") + bent[index][1:]
                with pytest.raises(ProofError):
                    check(first, second, first_root, second_root, bent)


def test_a_truncated_newer_tree_is_named() -> None:
    leaves = [leaf_hash(entry) for entry in entries(6)]
    with pytest.raises(ProofError, match="fewer than the older's 6: it was truncated"):
        check(6, 4, root(leaves), root(leaves[:4]), [])


def test_equal_sizes_need_equal_roots_and_no_proof() -> None:
    leaves = [leaf_hash(entry) for entry in entries(5)]
    check(5, 5, root(leaves), root(leaves), [])
    with pytest.raises(ProofError, match="different roots"):
        check(5, 5, root(leaves), root(leaves[:4]), [])
    with pytest.raises(ProofError, match="must be empty"):
        check(5, 5, root(leaves), root(leaves), [leaves[0]])


def test_malformed_input_is_refused() -> None:
    leaves = [leaf_hash(entry) for entry in entries(5)]
    with pytest.raises(ProofError, match="not a 64-digit hex hash"):
        check(2, 5, root(leaves[:2]), root(leaves), ["zz" * 32, leaves[4]])
    with pytest.raises(ProofError, match="start at 1"):
        check(0, 5, EMPTY_ROOT, root(leaves), [])
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(6, leaves)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(0, leaves)


def test_an_independent_implementation_agrees_on_every_root() -> None:
    """pymerkle (RFC 9162 trees, SHA-256, 0x00/0x01 prefixes) builds the same roots from the
    same entries, for every size up to 70 (three sizes past a power of two included)."""
    from pymerkle import InmemoryTree  # type: ignore[import-untyped]

    data = entries(70)
    tree = InmemoryTree(algorithm="sha256")
    ours = roots_at([leaf_hash(entry) for entry in data], range(1, 71))
    for n, entry in enumerate(data, start=1):
        tree.append_entry(entry)
        assert tree.get_root(n).hex() == ours[n], n
