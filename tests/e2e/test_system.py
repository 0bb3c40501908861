"""The four services as processes, as `make up` runs them, talked to over HTTP."""

import uuid

import httpx
import pytest

from services.bank_gateway.settings import GatewaySettings
from services.payment.settings import PaymentSettings
from testkit.processes import ports, service_process
from testkit.waiting import eventually_blocking
from tests.integration.events_harness import Topics, points_process

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system():
    free = ports("bank", "gateway", "payment")
    urls = {name: f"http://127.0.0.1:{port}" for name, port in free.items()}
    topics = Topics.unique()
    env = {
        **topics.env(),
        "FAKE_BANK_PORT": str(free["bank"]),
        "BANK_GATEWAY_PORT": str(free["gateway"]),
        "BANK_URL": urls["bank"],
        "PAYMENT_PORT": str(free["payment"]),
        "BANK_GATEWAY_URL": urls["gateway"],
    }
    with (
        service_process("services.bank_gateway.fake_bank", env, f"{urls['bank']}/health"),
        service_process("services.bank_gateway", env, f"{urls['gateway']}/health"),
        service_process("services.payment", env, f"{urls['payment']}/health"),
        points_process(topics) as points_url,
    ):
        yield {**urls, "points": points_url}


def test_every_service_answers_health(system):
    for url in system.values():
        assert httpx.get(f"{url}/health").status_code == 200


def test_a_user_tops_up_pays_and_earns_points(system):
    key = PaymentSettings().api_keys()[0]
    assert GatewaySettings().bank_gateway_token.get_secret_value()
    client = httpx.Client(base_url=system["payment"], headers={"Authorization": f"Bearer {key}"})
    user = f"e2e-{uuid.uuid4().hex[:10]}"
    assert client.post("/wallets", json={"user_id": user}).status_code == 201
    charged = client.post(
        f"/wallets/{user}/charges", json={"charge_id": f"c-{user}", "amount": 50_000}
    )
    assert charged.status_code == 201 and charged.json()["balance_after"] == 50_000
    paid = client.post(
        "/payments", json={"order_id": f"o-{user}", "user_id": user, "amount": 20_000}
    )
    assert paid.status_code == 201 and paid.json()["balance_after"] == 30_000
    assert client.get(f"/wallets/{user}").json()["balance"] == 30_000

    def points_earned() -> bool:
        answer = httpx.get(f"{system['points']}/points/{user}", timeout=5)
        return answer.status_code == 200 and answer.json()["balance"] == 200

    eventually_blocking(
        points_earned, timeout=60, interval=0.2, message="no points for the payment"
    )
