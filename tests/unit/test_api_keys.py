"""API keys with scopes, checked on a tiny app in memory."""

import httpx
import pytest
from fastapi import Depends, FastAPI

from shared.auth import EVERY_SCOPE, KeyRing, Scope, parse_api_keys
from shared.http import install_error_handlers

KEYS = "bare, reader:read, payer:pay+read, refunder:refund, operator:admin"


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app, retry_after_seconds=1)
    keys = KeyRing(parse_api_keys(KEYS))
    for scope in Scope:
        app.add_api_route(
            f"/{scope}", lambda: {"ok": True}, dependencies=[Depends(keys.require(scope))]
        )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


ALLOWED = {
    "bare": set(Scope),
    "reader": {Scope.READ},
    "payer": {Scope.PAY, Scope.READ},
    "refunder": {Scope.REFUND},
    "operator": set(Scope),
}


@pytest.mark.parametrize("key", sorted(ALLOWED))
async def test_a_key_reaches_exactly_its_scopes_and_is_403_elsewhere(client, key):
    for scope in Scope:
        answer = await client.get(f"/{scope}", headers={"Authorization": f"Bearer {key}"})
        if scope in ALLOWED[key]:
            assert answer.status_code == 200, (key, scope)
        else:
            assert (answer.status_code, answer.json()["code"]) == (403, "FORBIDDEN"), (key, scope)
            assert key not in answer.text  # the answer names the scope, never the key


@pytest.mark.parametrize("header", ["", "Bearer reader:read", "Bearer read", "Basic reader"])
async def test_an_unknown_key_is_401_whatever_the_scope(client, header):
    answer = await client.get("/read", headers={"Authorization": header})
    assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHORIZED")


def test_entries_are_parsed_with_their_scopes_and_a_bare_key_has_all():
    keys = parse_api_keys(" a , b:read+refund ,, c:admin")
    assert [(k.secret, k.scopes) for k in keys] == [
        (b"a", EVERY_SCOPE),
        (b"b", frozenset({Scope.READ, Scope.REFUND})),
        (b"c", frozenset({Scope.ADMIN})),
    ]


def test_an_unknown_scope_names_the_entry_not_the_key():
    with pytest.raises(ValueError, match="entry 2") as refused:
        parse_api_keys("first,s3cret-key:reed")
    assert "s3cret" not in str(refused.value)
