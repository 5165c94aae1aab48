"""The stored procedures MySQL's writes call, created by its migrations: one round trip for a write
that takes several statements, each a round trip (see 0004_create_session_procedure.sql)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import pymysql

from gateway.connect.credentials import Credentials
from gateway.datasources.records import NewSession, NewShot
from gateway.datasources.sql.rows import SqlConnection

__all__ = ["call_create_session", "shot_records", "unusable", "why_unusable"]

_CREATE_SESSION = "CALL gateway_create_session(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SCORE_WIDTH, _FLOAT_WIDTH = 6, 24  # a record is 54 characters, as migration 4 cuts them
_NO_SUCH_PROCEDURE = 1305
_EXECUTE_DENIED = 1370


async def call_create_session(
    conn: SqlConnection, new: NewSession, records: str, now: datetime
) -> int | None:
    """Insert `new` with its shots (`records`, from shot_records) and its activity; its id, or None
    when its user or group does not exist (nothing is written then)."""
    args = (
        new.user_id, new.group_id, new.started_at, new.location, new.discipline, new.distance_meters,
        new.notes, len(new.shots), new.total_tenths(), now, records,
    )  # fmt: skip
    (row,) = await conn.fetch(_CREATE_SESSION, args)
    session_id: int | None = row["session_id"]
    return session_id


def shot_records(shots: Sequence[NewShot]) -> str | None:
    """The shots as the procedure reads them: per shot, score_tenths in 6 characters, x and y in 24
    each (a float's repr fits: 17 digits, a sign, a point and an exponent), right-aligned, blank for
    NULL. The server cuts each value at its offset, where JSON it would parse again for each.
    None when a shot does not fit: a score of more than 6 characters (beyond any SMALLINT), or an
    infinite or NaN coordinate."""
    records = []
    for shot in shots:
        score = str(shot.score_tenths)
        if len(score) > _SCORE_WIDTH or not math.isfinite(shot.x or 0.0) or not math.isfinite(shot.y or 0.0):
            return None
        x = "" if shot.x is None else repr(float(shot.x))
        y = "" if shot.y is None else repr(float(shot.y))
        # rjust, not a format spec with a nested width: that builds the spec per value (~4x the time).
        records.append(score.rjust(_SCORE_WIDTH) + x.rjust(_FLOAT_WIDTH) + y.rjust(_FLOAT_WIDTH))
    return "".join(records)


def unusable(exc: BaseException) -> bool:
    """Whether `exc` says the procedure cannot be called here: it is missing, or not for this user."""
    return (
        isinstance(exc, pymysql.err.OperationalError)
        and bool(exc.args)
        and exc.args[0] in (_NO_SUCH_PROCEDURE, _EXECUTE_DENIED)
    )


def why_unusable(exc: BaseException, login: Credentials) -> str:
    """What to do about `exc` (one that `unusable` accepts), for the pool that logged in as `login`."""
    if exc.args[0] == _EXECUTE_DENIED:
        fix = f"GRANT EXECUTE ON PROCEDURE `{login.database}`.gateway_create_session TO '{login.user}'"
    else:
        fix = "create it again from gateway/datasources/mysql/migrations/0004_create_session_procedure.sql"
    return f"cannot call gateway_create_session ({exc.args[1]}): {fix}"
