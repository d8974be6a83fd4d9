"""A small synthetic city, published and analysed, shared by the open-data and bulletin test modules.

No tests here: ``city_db`` builds it once per module through the bureau's own functions (simulate → publish →
analyse) in a database cloned from the migrated template.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import psycopg
import pytest
from psycopg import sql

from bureau.city import simulate
from bureau.macro_run import run_macro
from bureau.publish import publish_month
from datafactory.db.connect import with_database
from tests.conftest import PG_SERVER, _admin

MONTH = date(2026, 10, 1)


@pytest.fixture(scope="module")
def city_db(template_db: str) -> Iterator[str]:
    name = f"dft_city_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                         sql.Identifier(template_db)))
    url = with_database(PG_SERVER, name)
    with psycopg.connect(url) as conn:
        simulate(conn, enterprises=400, towns=12, months=26, seed=3, end=MONTH)
        publish_month(conn, MONTH)
        run_macro(conn, MONTH)
    yield url
    with _admin() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
