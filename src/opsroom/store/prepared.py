"""The statements every job runs, compiled once and run on SQLite's driver directly.

A job's start and end run about eight statements inside durable transactions, while every
other job waits for the write lock, and keeping the output of running jobs runs four per
job every half second. Through SQLAlchemy each costs some 50 µs of Python (execution
context, events, result objects, a greenlet round trip) around SQL that takes a few: that
was half the store's CPU per job, and with 500 jobs streaming, a third of the event loop's.
A `Prepared` statement is compiled by SQLAlchemy once per set of parameter names and run
on the SQLite connection itself, with the column types' own bind and result processors, so
values go in and come back exactly as SQLAlchemy would pass them. Errors are SQLAlchemy's
own (`DBAPIError.instance`, `StatementError`), so callers see no difference. Other
databases, and any statement this module cannot run alone (a Python-side default that is
not a constant, an expanding IN), go through SQLAlchemy as before.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.expression import Select

from opsroom.store import inline
from opsroom.store.engine import inline_driver

_MISSING = object()  # no value among the parameters
Processor = Callable[[Any], Any] | None
Statement = Select[Any] | UpdateBase


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where one `?` of the SQL takes its value from."""

    keys: tuple[str, ...]  # the parameter names it is read from, first found
    fixed: Any  # its value when none is given (a constant, a column's scalar default)
    required: bool
    process: Processor


@dataclass(frozen=True, slots=True)
class _Plan:
    """One compiled form: the SQL, its slots, and how its rows come back."""

    sql: str
    slots: tuple[_Slot, ...]
    results: dict[str, Processor]  # result column name → its type's processor


class Prepared:
    """A Core statement of the job path: on SQLite run without SQLAlchemy's execution."""

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, ...], _Plan | None] = {}
        self._rows: dict[tuple[str, ...], Callable[..., Any]] = {}

    async def many(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement (one without rows) once for each set of parameters, in one
        call of the driver; every set names the same parameters."""
        if not rows:
            return
        inline_ = inline_driver(conn)
        plan = None if inline_ is None else self._plan(inline_[1], tuple(sorted(rows[0])))
        if inline_ is None or plan is None:
            await conn.execute(self.statement, [dict(r) for r in rows])
            return
        try:
            values = [[_value(slot, params) for slot in plan.slots] for params in rows]
        except InvalidRequestError as e:
            raise StatementError(str(e), plan.sql, [dict(r) for r in rows[:10]], e) from e
        cursor = inline_[0].cursor()
        try:
            await cursor.executemany(plan.sql, values)
            await cursor.close()
        except inline.Error as e:
            raise DBAPIError.instance(plan.sql, values[:10], e, inline.Error) from e

    def _plan(self, dialect: Dialect, names: tuple[str, ...]) -> _Plan | None:
        try:
            return self._plans[names]
        except KeyError:
            plan = self._plans[names] = _plan(self.statement, dialect, names)
            return plan

    async def first(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Any | None:
        """The first row the statement returns (attributes named as its columns), or None."""
        rows = await self.all(conn, params)
        return rows[0] if rows else None

    async def all(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Sequence[Any]:
        """Every row the statement returns (none for one without rows)."""
        # The transaction's own driver connection, as SQLAlchemy holds it: SQLite's only.
        inline_ = inline_driver(conn)
        if inline_ is None:
            return await _through_sqlalchemy(conn, self.statement, params)
        raw, dialect = inline_
        plan = self._plan(dialect, tuple(sorted(params)))
        if plan is None:
            return await _through_sqlalchemy(conn, self.statement, params)
        try:
            values = [_value(slot, params) for slot in plan.slots]
        except InvalidRequestError as e:
            raise StatementError(str(e), plan.sql, [dict(params)], e) from e
        try:
            cursor = await raw.execute(plan.sql, values)
            description = cursor.description
            fetched = await cursor.fetchall() if description is not None else []
            await cursor.close()
        except inline.Error as e:
            raise DBAPIError.instance(plan.sql, values, e, inline.Error) from e
        if description is None:
            return []
        columns = tuple(d[0] for d in description)
        make = self._rows.get(columns)
        if make is None:
            make = self._rows[columns] = namedtuple("Row", columns)
        processors = [plan.results.get(c) for c in columns]
        if not any(processors):
            return [make(*row) for row in fetched]
        return [make(*_processed(processors, row)) for row in fetched]


def _processed(processors: Sequence[Processor], row: Sequence[Any]) -> list[Any]:
    """A row's values as their columns' types hand them back (None stays None)."""
    return [v if p is None or v is None else p(v) for p, v in zip(processors, row, strict=True)]


async def _through_sqlalchemy(
    conn: AsyncConnection, statement: Statement, params: Mapping[str, Any]
) -> Sequence[Any]:
    result = await conn.execute(statement, dict(params))
    return result.all() if result.returns_rows else []


def _value(slot: _Slot, params: Mapping[str, Any]) -> Any:
    """The slot's value from `params` (or its fixed one), through its type's processor."""
    value = _MISSING
    for key in slot.keys:
        if key in params:
            value = params[key]
            break
    if value is _MISSING:
        if slot.required:
            raise InvalidRequestError(f"a value is required for bind parameter {slot.keys[0]!r}")
        value = slot.fixed
    return value if slot.process is None or value is None else slot.process(value)


def _plan(statement: Statement, dialect: Dialect, names: tuple[str, ...]) -> _Plan | None:
    """Compile `statement` for parameters named `names`; None when it needs SQLAlchemy."""
    compiled = statement.compile(dialect=dialect, column_keys=list(names))
    assert isinstance(compiled, SQLCompiler)
    if compiled.positiontup is None:
        return None
    defaults: dict[str, Any] = {}
    for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
        default = column.default
        if default is None or not default.is_scalar:
            return None  # computed at execution: SQLAlchemy's to run
        defaults[column.key] = getattr(default, "arg", None)
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    slots = []
    for name in compiled.positiontup:
        bind = by_name[name]
        if bind.expanding or bind.callable is not None:
            return None
        fixed = defaults.get(bind.key, bind.value)
        required = bind.required and bind.key not in defaults
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        slots.append(_Slot((bind.key, name), fixed, bool(required), process))
    exported: Any = (
        statement.selected_columns if isinstance(statement, Select) else statement.exported_columns
    )
    results: dict[str, Processor] = {}
    for key, column in exported.items():
        results[key] = column.type.dialect_impl(dialect).result_processor(dialect, None)
    return _Plan(compiled.string, tuple(slots), results)
