"""NCBI's rate budget kept in a PostgreSQL store, for hosts that share one API key.

NCBI allows an API key 10 requests per second wherever they come from. Processes on one machine
share the budget through a file (``sources/rate_limit.py``: ``FileBudget``); processes on several
hosts share one database, so there each budget is a row of ``rate_budget``: a reservation locks
it (``SELECT ... FOR UPDATE``), reads the database's clock, stores the start it takes and
commits, and the caller waits for that start outside the transaction. The hosts' clocks need not
agree; one round trip per request is small beside NCBI's answer times.

SQLite stores are one machine's: the file budget serves them (:func:`budget_for` returns None).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from litwatch.config import Settings
from litwatch.sources.rate_limit import next_start
from litwatch.store import models

rate_budget = models.table(models.RateBudget)
_NOW = sa.extract("epoch", sa.func.clock_timestamp())


class DatabaseBudget:
    """Budgets in the ``rate_budget`` table of a PostgreSQL store (``sources.rate_limit.Budget``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def reserve(self, key: str, interval: float) -> float:
        with self.engine.begin() as conn:
            conn.execute(postgresql.insert(rate_budget).values(name=key, last_start=0.0)
                         .on_conflict_do_nothing(index_elements=["name"]))
            last = conn.execute(sa.select(rate_budget.c.last_start).where(rate_budget.c.name == key)
                                .with_for_update()).scalar_one()
            now = float(conn.execute(sa.select(_NOW)).scalar_one())
            start = next_start(last, now, interval)
            conn.execute(rate_budget.update().where(rate_budget.c.name == key).values(last_start=start))
        return start - now


def budget_for(engine: Engine, settings: Settings) -> DatabaseBudget | None:
    """The budget every host on this store shares: with an API key on PostgreSQL; else None
    (this machine's processes share ``settings.rate_file``)."""
    if settings.api_key and engine.dialect.name == "postgresql":
        return DatabaseBudget(engine)
    return None
