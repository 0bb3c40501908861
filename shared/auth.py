"""API keys: `Authorization: Bearer <key>`, checked in constant time, with scopes.

An entry of a key list is `key` (every scope) or `key:scope+scope` with scopes `read`
(GET wallets, payments, points), `pay` (create wallets, top-ups, payments), `refund`
(cancel) and `admin` (everything, and operator endpoints). A wrong or missing key is 401
UNAUTHORIZED; a known key without the scope an endpoint needs is 403 FORBIDDEN. Keys are
never logged, and an error about a key list names the entry's position, not the key.
"""

import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request
from pydantic import SecretStr, field_validator

from shared.http import ApiError
from shared.settings import BaseServiceSettings


class Scope(StrEnum):
    READ = "read"
    PAY = "pay"
    REFUND = "refund"
    ADMIN = "admin"


EVERY_SCOPE = frozenset(Scope)


@dataclass(frozen=True)
class ApiKey:
    secret: bytes
    scopes: frozenset[Scope]

    def allows(self, scope: Scope | None) -> bool:
        return scope is None or scope in self.scopes or Scope.ADMIN in self.scopes


def parse_api_keys(entries: str) -> list[ApiKey]:
    """`key` or `key:scope+scope` entries, comma-separated; ValueError on an unknown scope."""
    keys = []
    for position, entry in enumerate(entries.split(","), start=1):
        secret, colon, scopes = entry.strip().partition(":")
        if not secret:
            continue
        try:
            chosen = frozenset(Scope(s.strip()) for s in scopes.split("+")) if colon else None
        except ValueError:
            allowed = ", ".join(Scope)
            raise ValueError(f"API key entry {position}: scopes must be of {allowed}") from None
        keys.append(ApiKey(secret.encode(), chosen or EVERY_SCOPE))
    return keys


class KeyRing:
    """The keys a service accepts."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self.keys = list(keys)

    @classmethod
    def of_bare_keys(cls, secrets: Iterable[str]) -> "KeyRing":
        return cls(ApiKey(s.strip().encode(), EVERY_SCOPE) for s in secrets if s.strip())

    def presented(self, authorization: str) -> ApiKey | None:
        """The key of a `Bearer <key>` header, None when it is no key of ours.

        Every key is compared in constant time, and all of them are always compared, so
        the time taken says nothing about which key nearly matched.
        """
        scheme, _, given = authorization.partition(" ")
        given_bytes = given.strip().encode()
        found = None
        for key in self.keys:
            if hmac.compare_digest(given_bytes, key.secret):
                found = key
        if scheme.lower() != "bearer" or not given_bytes:
            return None
        return found

    def require(self, scope: Scope | None = None) -> Callable[[Request], Awaitable[None]]:
        """A dependency that admits a key of ours holding `scope` (None: any key)."""

        async def check(request: Request) -> None:
            key = self.presented(request.headers.get("authorization", ""))
            if key is None:
                raise ApiError(
                    401, "UNAUTHORIZED", "missing or wrong API key", {"WWW-Authenticate": "Bearer"}
                )
            if not key.allows(scope):
                raise ApiError(403, "FORBIDDEN", f"this API key lacks the {scope} scope")

        return check


class ApiKeySettings(BaseServiceSettings):
    """PAYMENT_API_KEYS, for every service that admits the payment API's callers."""

    payment_api_keys: SecretStr

    @field_validator("payment_api_keys")
    @classmethod
    def _scopes_are_known(cls, value: SecretStr) -> SecretStr:
        parse_api_keys(value.get_secret_value())
        return value

    def key_ring(self) -> KeyRing:
        return KeyRing(parse_api_keys(self.payment_api_keys.get_secret_value()))

    def api_keys(self) -> list[str]:
        """The keys themselves, without their scopes: what a client puts in its header."""
        return [key.secret.decode() for key in self.key_ring().keys]
