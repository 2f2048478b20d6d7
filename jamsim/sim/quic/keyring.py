"""Private keys for the ``quic`` fidelity: which identity each simulated validator uses.

A ValidatorSet carries public keys only, but real TLS needs each node's private key
(its certificate is signed with it and CertificateVerify proves possession). The
simulation therefore takes an ``identities`` resolver ``key -> ValidatorIdentity``.
:class:`DevKeyring` resolves the deterministic dev keys of
:meth:`ValidatorSet.dev` and of the scenario timeline's epoch rotations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from jamsim.core.errors import UsageError
from jamsim.identity import ValidatorIdentity

__all__ = ["DevKeyring", "IdentityResolver"]

IdentityResolver = Callable[[bytes], ValidatorIdentity]
"""``resolve(public_key)`` -> the identity the node with that key presents in TLS."""


class DevKeyring:
    """Resolves public keys of dev validators generated from known seeds.

    ``seeds`` are the ``seed`` arguments given to ``ValidatorIdentity.generate_dev``
    (``ValidatorSet.dev(n, seed=s)`` uses ``s``; the scenario timeline's epoch ``e``
    uses ``f"{s}/epoch{e}"``). Indices are generated lazily in blocks, so resolving
    the keys of a V-validator set costs V key derivations once.
    """

    def __init__(self, seeds: Iterable[int | str], count: int) -> None:
        self.seeds = tuple(seeds)
        if not self.seeds:
            raise UsageError("DevKeyring needs at least one seed")
        self.count = count
        self._known: dict[bytes, ValidatorIdentity] = {}
        self._generated = 0

    def _extend(self, upto: int) -> None:
        for index in range(self._generated, upto):
            for seed in self.seeds:
                identity = ValidatorIdentity.generate_dev(seed, index)
                self._known[identity.public_key] = identity
        self._generated = max(self._generated, upto)

    def __call__(self, key: bytes) -> ValidatorIdentity:
        if self._generated < self.count:
            self._extend(self.count)
        identity = self._known.get(key)
        if identity is None:
            raise UsageError(
                f"no private key for validator {key.hex()[:16]}…: not a dev key of seeds "
                f"{self.seeds!r} (pass identities= to the quic-fidelity Simulation)")
        return identity

    @classmethod
    def for_scenario(cls, seed: int, count: int, epochs: int) -> DevKeyring:
        """The keys a scenario with ``epochs`` epoch rotations can use."""
        return cls([seed, *(f"{seed}/epoch{e}" for e in range(1, epochs + 1))], count)
