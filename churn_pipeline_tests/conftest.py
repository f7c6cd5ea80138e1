"""Shared fixtures: databases (SQLite file, a throwaway MySQL database) and the real Telco sample.

MySQL tests use ``CHURN_TEST_MYSQL_URL`` (default ``mysql+pymysql://root@127.0.0.1:3306``), create
their own database and drop it afterwards. Without a server they skip, except when ``CI`` is set:
there a missing server is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from churn_pipeline.storage import mysql_server_database

REPO_ROOT = Path(__file__).resolve().parents[1]
MYSQL_SERVER_URL = os.environ.get("CHURN_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
TELCO_SAMPLE = Path(
    os.environ.get("CHURN_TELCO_SAMPLE", REPO_ROOT.parent / "shared" / "data" / "telco_customer_churn.csv")
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    engine = sa.create_engine(MYSQL_SERVER_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as error:  # noqa: BLE001 - any connection failure means "no server"
        message = f"MySQL server at {MYSQL_SERVER_URL} not reachable: {error.__class__.__name__}: {error}"
        if _in_ci():
            pytest.fail(f"{message} (CI is set: the MySQL tests must run)")
        pytest.skip(message)
    finally:
        engine.dispose()
    return MYSQL_SERVER_URL


@pytest.fixture
def mysql_url(mysql_server_url: str):
    """A fresh, empty MySQL database for one test, dropped afterwards."""
    with mysql_server_database(mysql_server_url, f"churn_test_{uuid.uuid4().hex[:12]}") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'churn.db'}"


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request) -> str:
    """Each test using this runs on both databases."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("mysql_url")


@pytest.fixture(scope="session")
def telco_sample_path() -> Path:
    if not TELCO_SAMPLE.is_file():
        pytest.skip(f"real Telco sample not found at {TELCO_SAMPLE} (set CHURN_TELCO_SAMPLE to its path)")
    return TELCO_SAMPLE
