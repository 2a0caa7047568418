"""Independent random streams, keyed: one seed fixes init, data order, scorers and perturbations."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts: independent streams for init, data order, scorers, ..."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
