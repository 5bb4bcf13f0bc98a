"""Statements for the hot path, written in SQLAlchemy Core and compiled once per dialect.

SQLAlchemy builds, caches and binds a statement in tens of microseconds; the authentication
path runs a handful of fixed statements thousands of times a second, so it compiles each one
once and runs it on the DBAPI cursor of the same connection (and so the same transaction).
The statements stay portable: SQLite gets ``?`` placeholders, PostgreSQL ``%(name)s``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class Prepared:
    def __init__(self, engine: Engine, statement: ClauseElement) -> None:
        compiled: SQLCompiler = statement.compile(dialect=engine.dialect)  # type: ignore[assignment]
        self.sql = compiled.string
        # Literals in the statement become bind parameters too; keep their values.
        self._fixed = {k: v for k, v in compiled.params.items() if v is not None}
        names = list(compiled.positiontup or []) if compiled.positional else None
        # itemgetter picks the positional values in one C call; a 1-tuple needs wrapping.
        self._pick: Callable[[dict[str, Any]], Any] | None = None
        if names is not None:
            getter = operator.itemgetter(*names) if names else (lambda _: ())
            self._pick = (lambda v: (getter(v),)) if len(names) == 1 else getter

    def params(self, values: dict[str, Any]) -> Any:
        if self._fixed:
            values = self._fixed | values
        if self._pick is None:
            return values
        return self._pick(values)

    def all(self, cursor: Any, **values: Any) -> list[tuple[Any, ...]]:
        cursor.execute(self.sql, self.params(values))
        return list(cursor.fetchall())

    def one(self, cursor: Any, **values: Any) -> tuple[Any, ...] | None:
        cursor.execute(self.sql, self.params(values))
        row: tuple[Any, ...] | None = cursor.fetchone()
        return row

    def run(self, cursor: Any, **values: Any) -> int:
        """Execute a write; returns the number of rows it changed."""
        cursor.execute(self.sql, self.params(values))
        return int(cursor.rowcount)

    def many(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        if self._pick is not None and not self._fixed:
            cursor.executemany(self.sql, map(self._pick, rows))  # no Python call per row
        else:
            cursor.executemany(self.sql, [self.params(r) for r in rows])


def dbapi_cursor(conn: Connection) -> Any:
    """A cursor on the DBAPI connection under ``conn`` (inside its open transaction)."""
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


class PreparedInsert(Prepared):
    """An ``INSERT ... VALUES`` whose ``many`` sends the rows as multi-row inserts where
    placeholders are positional (SQLite): one statement per 64, 32, ... 1 rows instead of one
    per row (each step, reset and halt of a statement costs more than a row's own work). On
    PostgreSQL it is ``executemany`` (psycopg pipelines it)."""

    CHUNKS = (64, 32, 16, 8, 4, 2, 1)

    def __init__(self, engine: Engine, statement: ClauseElement) -> None:
        super().__init__(engine, statement)
        head, values = self.sql.rsplit(" VALUES ", 1)
        self._multi = {n: f"{head} VALUES " + ", ".join([values] * n) for n in self.CHUNKS}

    def many(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        pick = self._pick
        if pick is None or self._fixed:
            super().many(cursor, rows)
            return
        at = 0
        for n in self.CHUNKS:
            while len(rows) - at >= n:
                cursor.execute(
                    self._multi[n], list(chain.from_iterable(map(pick, rows[at : at + n])))
                )
                at += n
