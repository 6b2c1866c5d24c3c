"""Which jobs the files define, and when each is due: the one "is it due?" rule.

A *job* is a saved query (``query:<name>``: fetch, store, tag) or a group's digest
(``digest:<group>``). A job is due when its schedule fired after its last attempt: for a query the
later of its last success (``query_state.last_success_at``) and its last failed run; for a digest
the group's newest digest that was sent, failed or empty (one a crash left half-done does not
count, so it is finished at once). A job never attempted is due at once.
A failed job therefore runs again at its next fire time (a digest whose send failed goes again
then, unchanged; one whose delivery is uncertain never goes again by itself, delivery/recipients.py),
and a downtime of any length makes each job due exactly once; the coverage ledger
(store/coverage.py) makes that one run search every date it lacks.
``litwatch run-due``, ``litwatch schedule`` and ``litwatch digest --send`` all follow this rule
(through jobs.Worker); ``litwatch digest`` shows :func:`due_at` as "next".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from litwatch.clock import utc
from litwatch.config import Settings
from litwatch.errors import InputError
from litwatch.files.groups import load_groups
from litwatch.files.queries import Problem, SavedQuery, load_queries
from litwatch.scheduling import schedules
from litwatch.store import models

query_state = models.table(models.QueryState)
runs = models.table(models.Run)
digests = models.table(models.Digest)
UNFINISHED_DIGEST = ("prepared", "accepted")  # a crash left these; deliver_group finishes them


class ScheduledGroup(Protocol):
    """What the scheduler reads of a litwatch.files.groups.Group (tests pass stand-ins)."""

    @property
    def name(self) -> str: ...
    @property
    def schedule(self) -> str | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def queries(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Job:
    kind: Literal["query", "digest"]
    name: str
    schedule: schedules.Schedule
    target: SavedQuery | ScheduledGroup

    @property
    def key(self) -> str:
        """The job's id in the daemon and the name of its lease."""
        return f"{self.kind}:{self.name}"


@dataclass
class JobPlan:
    """The jobs the query and group files define, and every problem found in those files."""

    queries: list[SavedQuery] = field(default_factory=list)
    groups: list[ScheduledGroup] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)

    def job(self, key: str) -> Job | None:
        return next((j for j in self.jobs if j.key == key), None)

    def digest_job(self, group: str) -> Job:
        """The digest job of ``group``; InputError when the files gave it none (``problems`` say why)."""
        job = self.job(f"digest:{group}")
        if job is None:
            raise InputError(f"group {group!r} has no scheduled digest: its schedule or timezone cannot be read; "
                             "fix: see `litwatch queries check`")
        return job

    def feeding(self, group: str) -> list[Job]:
        """The query jobs that feed ``group`` (listed in the group or naming it in their file)."""
        target = next((g for g in self.groups if g.name == group), None)
        names = set(target.queries if target is not None else ()) | {
            q.name for q in self.queries if group in q.groups}
        return [j for j in self.jobs if j.kind == "query" and j.name in names]



def build_plan(queries: Iterable[SavedQuery], groups: Iterable[ScheduledGroup], problems: Iterable[Problem], *,
               groups_file: Path = Path("groups.toml")) -> JobPlan:
    """Turn loaded queries and groups into jobs; a schedule the scheduler cannot read disables its job."""
    plan = JobPlan(list(queries), list(groups), list(problems))
    for query in plan.queries:
        try:
            schedule = schedules.parse(query.schedule, default=schedules.DEFAULT_QUERY_SCHEDULE)
        except ValueError as exc:
            plan.problems.append(Problem(query.path, None, f"{exc}; this query is not scheduled", "error"))
            continue
        plan.jobs.append(Job("query", query.name, schedule, query))
    for group in plan.groups:
        try:
            schedule = schedules.parse(group.schedule, group.timezone or "UTC",
                                       default=schedules.DEFAULT_DIGEST_SCHEDULE)
        except ValueError as exc:
            plan.problems.append(Problem(groups_file, None,
                                         f"group {group.name}: {exc}; its digest is not scheduled", "error"))
            continue
        plan.jobs.append(Job("digest", group.name, schedule, group))
    return plan


def load_plan(settings: Settings, *, today: dt.date) -> JobPlan:
    """Read the query files and ``groups.toml``; a file with an error disables only what it defines."""
    queries, problems = load_queries(settings.queries_dir, today=today)
    groups, group_problems = load_groups(settings.groups_file, queries)
    return build_plan(queries, groups, problems + group_problems, groups_file=settings.groups_file)


def last_attempt(engine: Engine, job: Job) -> dt.datetime | None:
    """When ``job`` last finished, successfully or not; None if never (an interrupted run does not count)."""
    with engine.connect() as conn:
        if job.kind == "query":
            success = conn.execute(sa.select(query_state.c.last_success_at)
                                   .where(query_state.c.query_name == job.name)).scalar_one_or_none()
            failure = conn.execute(sa.select(sa.func.max(runs.c.finished_at))
                                   .where(runs.c.query_name == job.name, runs.c.status == "failed")).scalar()
            found = [utc(t) for t in (success, failure) if t is not None]
            return max(found, default=None)
        newest = conn.execute(
            sa.select(sa.func.max(digests.c.created_at))
            .where(digests.c.group_name == job.name, digests.c.status.not_in(UNFINISHED_DIGEST))
        ).scalar()
        return utc(newest) if newest is not None else None


def due_at(engine: Engine, job: Job) -> dt.datetime | None:
    """When ``job`` falls (or fell) due: its first fire time after its last attempt, in UTC; None when it
    was never attempted, so it is due at once. The one rule ``run-due``, ``schedule`` and
    ``digest --send`` follow, and what ``litwatch digest`` shows as "next"."""
    last = last_attempt(engine, job)
    return None if last is None else schedules.next_fire(job.schedule, last)


def next_due(plan: JobPlan, now: dt.datetime) -> tuple[dt.datetime, list[Job]] | None:
    """When a schedule fires next after ``now``, and every job that fires then (queries first)."""
    upcoming = [(fire, job) for job in plan.jobs if (fire := schedules.next_fire(job.schedule, now)) is not None]
    if not upcoming:
        return None
    first = min(fire for fire, _job in upcoming)
    return first, [job for fire, job in upcoming if fire == first]


