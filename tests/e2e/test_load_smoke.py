"""`make load` for ten seconds against the four services as processes, in databases of the
test's own: the mix runs, the reports are written, the audit after it finds nothing wrong.

Speed is not judged here (limits are set out of reach): only that the tool works end to end.
"""

import json
import os
import subprocess
import sys

import pytest

from testkit.processes import REPO
from tests.e2e.four_services import four_services
from tests.integration.audit_harness import admin, database_names, drop_database, recreate

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def databases():
    payment_db, points_db = database_names("loadsmoke")
    async with admin() as conn:
        await recreate(conn, payment_db)
        await recreate(conn, points_db)
    yield payment_db, points_db
    async with admin() as conn:
        await drop_database(conn, payment_db)
        await drop_database(conn, points_db)


@pytest.fixture(scope="module")
def shop_system(databases):
    payment_db, points_db = databases
    with four_services(
        {"POINTS_MYSQL_DATABASE": points_db}, PAYMENT_MYSQL_DATABASE=payment_db
    ) as urls:
        yield {
            "LOAD_HOST": urls["payment"],
            "LOAD_POINTS_HOST": urls["points"],
            "PAYMENT_MYSQL_DATABASE": payment_db,
            "POINTS_MYSQL_DATABASE": points_db,
        }


def test_ten_second_load_passes_and_the_audit_after_it_is_clean(shop_system, tmp_path):
    env = {
        **os.environ,
        **shop_system,  # the audit after the load reads the same databases
        "LOAD_SECONDS": "10",
        "LOAD_RATE": "20",
        "LOAD_USERS": "5",
        "LOAD_SPAWN_RATE": "5",
        "LOAD_WALLETS": "20",
        "LOAD_RESULTS_DIR": str(tmp_path),
        # Not a speed test: only an error or the audit may fail it.
        "LOAD_P99_MS": "600000",
        "LOAD_MIN_RATE_SHARE": "0",
        "LOAD_TIMEOUT_SECONDS": "60",
        "LOAD_MAX_ERROR_RATE": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.load"], cwd=REPO, env=env, capture_output=True,
        timeout=300, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [out] = tmp_path.glob("load-*")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["audit_ok"] is True and summary["breaches"] == []
    assert summary["stats"]["requests"] > 0 and summary["stats"]["failures"] == 0
    assert (out / "report.html").stat().st_size > 0
    assert (out / "load_stats.csv").exists()
    names = {entry["name"] for entry in json.loads((out / "stats.json").read_text())}
    assert "POST /payments" in names and any(name.startswith("bad: ") for name in names)
    assert "OK: no discrepancy" in done.stdout
