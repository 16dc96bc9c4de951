"""The audit log's Merkle tree, as RFC 9162 §2.1 (RFC 6962 §2.1) defines it, with SHA-256.

Pure functions over leaf hashes (no database, no settings), so that the offline verifier
(`efdb verify`) runs exactly this code:

- leaf hash of an entry `d`: SHA-256(0x00 ‖ d); an interior node: SHA-256(0x01 ‖ left ‖ right)
  (the two prefixes keep a leaf from ever passing for a node);
- the root of n leaves, MTH(D[n]): split at k, the largest power of two below n, and hash the
  two halves' roots as a node;
- a consistency proof between sizes m ≤ n (§2.1.4.1), and its check (§2.1.4.2): the tree of
  n leaves starts with exactly the m leaves whose root the old checkpoint signed.

In efdb each audit event is one leaf, in event order; its entry is the event's canonical bytes
(app.core.audit.canonical_event), so the leaf hash is SHA-256(0x00 ‖ canonical event).
Hashes travel as lowercase hex.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


class ProofError(ValueError):
    """A proof that does not check out; the message says why."""


def leaf_hash(entry: bytes) -> str:
    return hashlib.sha256(LEAF_PREFIX + entry).hexdigest()


def node_hash(left: str, right: str) -> str:
    return _node(bytes.fromhex(left), bytes.fromhex(right)).hex()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _raw(leaves: Iterable[str]) -> list[bytes]:
    return [bytes.fromhex(leaf) for leaf in leaves]


def _mth(leaves: list[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]), hi > lo."""
    if hi - lo == 1:
        return leaves[lo]
    k = lo + _split(hi - lo)
    return _node(_mth(leaves, lo, k), _mth(leaves, k, hi))


def root(leaves: Sequence[str]) -> str:
    """MTH of the given leaf hashes (the empty tree's root is SHA-256 of nothing)."""
    if not leaves:
        return EMPTY_ROOT
    raw = _raw(leaves)
    return _mth(raw, 0, len(raw)).hex()


def roots_at(leaves: Iterable[str], sizes: Iterable[int]) -> dict[int, str]:
    """The root at each of `sizes` in one pass over the leaves (a stack of the perfect
    subtrees so far, folded right to left), for checking many checkpoints at once. A size
    beyond the last leaf is left out of the answer."""
    wanted = set(sizes)
    found: dict[int, str] = {}
    if 0 in wanted:
        found[0] = EMPTY_ROOT
    peaks: list[tuple[int, bytes]] = []  # (subtree size, hash), sizes strictly decreasing
    for count, leaf in enumerate(leaves, start=1):
        size, digest = 1, bytes.fromhex(leaf)
        while peaks and peaks[-1][0] == size:
            below, left = peaks.pop()
            size, digest = size + below, _node(left, digest)
        peaks.append((size, digest))
        if count in wanted:
            folded = peaks[-1][1]
            for _, left in reversed(peaks[:-1]):
                folded = _node(left, folded)
            found[count] = folded.hex()
    return found


def consistency_proof(first: int, leaves: Sequence[str]) -> list[str]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1: the hashes that show the tree of `len(leaves)`
    leaves extends its first `first` leaves (0 < first ≤ n; empty when first == n)."""
    if not 0 < first <= len(leaves):
        raise ValueError(f"no consistency proof from size {first} to size {len(leaves)}")
    raw = _raw(leaves)
    return [digest.hex() for digest in _subproof(first, raw, 0, len(raw), True)]


def _subproof(m: int, leaves: list[bytes], lo: int, hi: int, whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], whole)."""
    if m == hi - lo:
        return [] if whole else [_mth(leaves, lo, hi)]
    k = _split(hi - lo)
    if m <= k:
        return [*_subproof(m, leaves, lo, lo + k, whole), _mth(leaves, lo + k, hi)]
    return [*_subproof(m - k, leaves, lo + k, hi, False), _mth(leaves, lo, lo + k)]


def verify_consistency(
    *, first: int, second: int, first_root: str, second_root: str, proof: Sequence[str]
) -> None:
    """Check a consistency proof (RFC 9162 §2.1.4.2); raise ProofError saying why it fails:
    the tree of `second` leaves with root `second_root` must extend the tree of `first`
    leaves with root `first_root`."""
    if first < 1 or second < 1:
        raise ProofError("tree sizes start at 1")
    if first > second:
        raise ProofError(
            f"the newer tree has {second} leaves, fewer than the older's {first}: it was truncated"
        )
    if first == second:
        if proof:
            raise ProofError("a proof between two trees of the same size must be empty")
        if first_root.lower() != second_root.lower():
            raise ProofError(
                f"both trees have {first} leaves but different roots ({first_root} and "
                f"{second_root}): the history was rewritten"
            )
        return
    path = [str(item).lower() for item in proof]
    if not path:
        raise ProofError("the proof is empty")
    if not all(_is_digest(item) for item in [*path, first_root, second_root]):
        raise ProofError("the proof or a root is not a 64-digit hex hash")
    if first & (first - 1) == 0:  # a power of two: the old root is the first subtree
        path.insert(0, first_root.lower())
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for item in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than the two tree sizes allow")
        if fn & 1 or fn == sn:
            fr = node_hash(item, fr)
            sr = node_hash(item, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, item)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the two tree sizes need")
    if fr != first_root.lower():
        raise ProofError(
            f"the proof does not lead to the older root {first_root} (it leads to {fr}): the "
            f"first {first} leaves are not the ones the older root covers"
        )
    if sr != second_root.lower():
        raise ProofError(
            f"the proof does not lead to the newer root {second_root} (it leads to {sr})"
        )


def _is_digest(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)
