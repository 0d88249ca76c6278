"""Building and signing transactions from Python (the producer-side API).

``Wallet`` pairs a key with a nonce source; ``sign_transaction`` produces the
canonical envelope bytes that go into a block. Nonces are milliseconds, as on
Hyperliquid: a wallet hands out strictly increasing values starting at the
time you give it, so many transactions per block and per signer are fine.
"""

from __future__ import annotations

from typing import Any

from .encoding import encode
from .messages import Transaction
from .signing import Signer, checksum_address


def sign_transaction(signer: Signer, chain_id: int, action: Any, nonce: int) -> bytes:
    """The canonical bytes of ``action`` signed by ``signer`` with ``nonce``."""
    signature = signer.sign(chain_id, nonce, encode(action))
    return encode(Transaction(action=action, nonce=nonce, signature=signature))


class Wallet:
    """A signer plus a strictly increasing nonce, bound to one chain id."""

    def __init__(self, signer: Signer, chain_id: int, name: str = "") -> None:
        self.signer = signer
        self.chain_id = chain_id
        self.name = name or checksum_address(signer.address)
        self._last_nonce = 0

    @classmethod
    def from_name(cls, name: str, chain_id: int) -> Wallet:
        """A wallet on the deterministic (insecure) test key of ``name``."""
        return cls(Signer.from_name(name), chain_id, name)

    @property
    def address(self) -> bytes:
        return self.signer.address

    def next_nonce(self, time_ms: int) -> int:
        """A fresh nonce near ``time_ms``: above every nonce this wallet gave before."""
        self._last_nonce = max(self._last_nonce + 1, time_ms)
        return self._last_nonce

    def sign(self, action: Any, time_ms: int, nonce: int | None = None) -> bytes:
        return sign_transaction(
            self.signer, self.chain_id, action, nonce if nonce is not None else self.next_nonce(time_ms)
        )
