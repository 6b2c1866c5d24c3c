"""Alembic environment: litwatch hands over its engine in ``config.attributes["engine"]``."""

from typing import Any

from alembic import context

from litwatch.store.models import Base


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Leave to autogenerate only what the models declare: the full-text tables, their triggers
    and the analysts' views live in migration 0003 alone, and must not be proposed for dropping."""
    return not (reflected and compare_to is None)


engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()
