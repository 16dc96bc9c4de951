"""Each audit event's hash covers the one before it (app/core/audit.py).

The writer and `verify_chain` share `chain_hash`, so a hash that left out its predecessor
would still verify; the signed checkpoints would then be the only thing binding the order
of the events. This pins what "hash-chained" means here: the hash of an event is
sha256(hash of the previous event, in ASCII hex, followed by the event's canonical JSON).
"""

from __future__ import annotations

import hashlib

from app.core.audit import GENESIS_HASH, chain_hash


def test_an_events_hash_is_over_the_previous_hash_and_the_event() -> None:
    event = b'{"action":"version.published","subject_id":"7"}'
    previous = hashlib.sha256(b"an earlier event").hexdigest()
    expected = hashlib.sha256(previous.encode("ascii") + event).hexdigest()
    assert chain_hash(previous, event) == expected
    # Another predecessor, another hash: an event cannot be moved or its past rewritten
    # without its own hash (and every later one) changing.
    assert chain_hash(GENESIS_HASH, event) != chain_hash(previous, event)
