"""The decision log's insert on a driver connection of its own.

Under load the writer commits groups of one or two rows, and SQLAlchemy's per-execution and
per-transaction work cost about 100 us a group beside some 50 us a row (SQLite, 2 cores). This
inserter keeps one driver connection for the writer thread, compiles the INSERT once, converts
values with the very bind processors SQLAlchemy would use (JSON text, SQLite's datetime text,
booleans), and hands the rows to the driver's executemany: the same rows in the database, about
a third of the CPU for a group of one.

Driver errors come out as SQLAlchemy's exception types, so the caller tells an outage from a row
the database refuses exactly as it does for its other statements.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.interfaces import DBAPIModule

from storage.models import DECISIONS

Processor = Callable[[Any], Any] | None
# What the database says of a row's values, which retrying cannot fix; other driver errors are outages.
ROW_ERRORS = (sa_exc.IntegrityError, sa_exc.DataError, sa_exc.ProgrammingError, sa_exc.NotSupportedError)


class DecisionInserter:
    """Inserts decision rows (column values) and commits, on one connection kept between groups.
    Not thread-safe: one writer thread owns it."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        dialect = db.dialect
        columns = [c.name for c in DECISIONS.c]
        compiled = insert(DECISIONS).compile(dialect=dialect, column_keys=columns)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        # Positional drivers (SQLite) take values in the statement's order; named ones a dict.
        order = list(compiled.positiontup or columns)
        self.columns: list[tuple[str, Processor]] = [
            (name, DECISIONS.c[name].type._cached_bind_processor(dialect)) for name in order]
        self.names = frozenset(columns)
        self._connection: Any = None  # SQLAlchemy's pool-proxied driver connection

    def takes(self, rows: Sequence[dict[str, Any]]) -> bool:
        """Whether every row names every column (a DecisionRecord's row does); a partial row needs the
        table's column defaults, which SQLAlchemy's own insert fills in."""
        return all(r.keys() >= self.names for r in rows)

    def params(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        if self.positional:
            return tuple([convert(row[name]) if convert else row[name] for name, convert in self.columns])
        return {name: convert(row[name]) if convert else row[name] for name, convert in self.columns}

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert and commit the rows, or raise SQLAlchemy's exception for the driver's error with
        nothing committed."""
        params = [self.params(r) for r in rows]  # a value no column takes fails here, as in SQLAlchemy
        dbapi_error = self.db.dialect.loaded_dbapi.Error
        try:
            connection = self._connect()
        except dbapi_error as exc:  # unreachable: an outage
            raise self._wrapped(exc, None) from exc
        try:
            cursor = connection.cursor()
            try:
                cursor.executemany(self.sql, params)
            finally:
                cursor.close()
            connection.commit()
        except dbapi_error as exc:
            raise self._wrapped(exc, connection) from exc

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a connection already broken is no loss
                connection.close()  # back to the pool

    def _connect(self) -> Any:
        if self._connection is None:
            self._connection = self.db.raw_connection()
        return self._connection

    def _wrapped(self, exc: DBAPIModule.Error, connection: Any) -> sa_exc.StatementError:
        """SQLAlchemy's exception for the driver's error (its own mapping by the error's class). A row's
        values (a constraint, a type, a NUL) leave the connection usable after a rollback; anything
        else is an outage, and the next group starts on a fresh connection."""
        dialect = self.db.dialect
        wrapped = sa_exc.DBAPIError.instance(self.sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect)
        refused_row = (connection is not None and isinstance(wrapped, ROW_ERRORS)
                       and not dialect.is_disconnect(exc, connection, None))
        if refused_row:
            try:
                connection.rollback()
            except dialect.loaded_dbapi.Error:
                self.close()
        else:
            self._connection = None
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.invalidate(exc)
            if isinstance(wrapped, sa_exc.DBAPIError):
                wrapped.connection_invalidated = True
        return wrapped
