"""The floor: a hand-written aiohttp handler per operation, one SQL statement building the JSON.

`python -m bench.raw_server --port P [--processes N] [--floor]`, over the gateway's DB_* environment
(postgres or mysql).
POST /n (the 50 newest sessions), /p {"id": n} (a user), /m {"userId": n, "shots": [...]} (a write).
`--floor` serves instead the floor under a GraphQL server's P on PostgreSQL (`graphql_floor_app`).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
from datetime import UTC, datetime
from typing import Any

import aiomysql
import asyncpg
import orjson
from aiohttp import hdrs, web
from graphql import parse

from gateway.datasources.postgres.json_sql import PostgresJsonSql
from gateway.doors.workers import event_loop
from gateway.schema.ids import decode_id
from gateway.telemetry.exchange import request_id_from

PG_N = """
SELECT json_build_object('data', json_build_object('shootingSessions', json_build_object('edges',
  COALESCE(json_agg(json_build_object('node', json_build_object(
    'id', s.id, 'startedAt', s.started_at, 'location', s.location,
    'user', json_build_object('id', u.id, 'displayName', u.display_name),
    'shots', (SELECT json_agg(json_build_object('sequence', t.sequence, 'score', t.score_tenths / 10.0)
              ORDER BY t.sequence) FROM shots t WHERE t.session_id = s.id)
  )) ORDER BY s.started_at DESC, s.id DESC), '[]'))))
FROM (SELECT * FROM shooting_sessions ORDER BY started_at DESC, id DESC LIMIT 50) s
JOIN users u ON u.id = s.user_id
"""
PG_P = """SELECT json_build_object('data', json_build_object('user',
  (SELECT json_build_object('id', id, 'displayName', display_name, 'email', email)
   FROM users WHERE id = $1)))"""

# P's answer as the gateway gives it: the user's `id` is its global ID, built as the gateway's SQL does.
FLOOR_P = f"""SELECT json_build_object('data', json_build_object('user',
  (SELECT json_build_object('id', {PostgresJsonSql().base64url("'User:' || id")}, 'displayName',
   display_name, 'email', email) FROM users WHERE id = $1)))"""

MY_N = """
SELECT JSON_OBJECT('data', JSON_OBJECT('shootingSessions', JSON_OBJECT('edges',
  COALESCE(JSON_ARRAYAGG(JSON_OBJECT('node', JSON_OBJECT(
    'id', s.id, 'startedAt', s.started_at, 'location', s.location,
    'user', JSON_OBJECT('id', u.id, 'displayName', u.display_name),
    'shots', (SELECT JSON_ARRAYAGG(JSON_OBJECT('sequence', t.sequence, 'score', t.score_tenths / 10)
              ORDER BY t.sequence) FROM shots t WHERE t.session_id = s.id)
  )) ORDER BY s.started_at DESC, s.id DESC), JSON_ARRAY()))))
FROM (SELECT * FROM shooting_sessions ORDER BY started_at DESC, id DESC LIMIT 50) s
JOIN users u ON u.id = s.user_id
"""
MY_P = """SELECT JSON_OBJECT('data', JSON_OBJECT('user',
  (SELECT JSON_OBJECT('id', id, 'displayName', display_name, 'email', email) FROM users WHERE id = %s)))"""


def _created(session_id: int, shots: list[dict[str, float]]) -> bytes:
    total = sum(round(s["score"] * 10) for s in shots)
    return orjson.dumps(
        {
            "data": {
                "createShootingSession": {"id": session_id, "shotCount": len(shots), "totalScore": total / 10}
            }
        }
    )


def _json(body: str | bytes) -> web.Response:
    return web.Response(
        body=body if isinstance(body, bytes) else body.encode(), content_type="application/json"
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    pass


async def postgres_pool(env: dict[str, str]) -> asyncpg.Pool:
    """The handler's pool, sized as the gateway's by default."""
    return await asyncpg.create_pool(
        host=env["DB_HOST"],
        port=int(env["DB_PORT"]),
        user=env["DB_USER"],
        database=env["DB_NAME"],
        min_size=2,
        max_size=10,
        reset=_keep_session,  # as the gateway: no round trip to reset state it never sets
    )


async def postgres_record(pool: asyncpg.Pool, user: int, shots: list[dict[str, float]]) -> int:
    """M's writes: the session, its shots and the activity, in one transaction; the session's id."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        session_id: int = await conn.fetchval(
            "INSERT INTO shooting_sessions (user_id, started_at, discipline, shot_count, total_tenths,"
            " created_at) VALUES ($1, $2, '10m Air Rifle', $3, $4, $2) RETURNING id",
            user,
            now,
            len(shots),
            sum(round(s["score"] * 10) for s in shots),
        )
        await conn.execute(
            "INSERT INTO shots (session_id, sequence, score_tenths) SELECT $1, q, s"
            " FROM unnest($2::smallint[]) WITH ORDINALITY AS a(s, q)",
            session_id,
            [round(s["score"] * 10) for s in shots],
        )
        await conn.execute(
            "INSERT INTO activities (kind, created_at, user_id, session_id)"
            " VALUES ('SESSION_CREATED', $1, $2, $3)",
            now,
            user,
            session_id,
        )
    return session_id


async def mysql_pool(env: dict[str, str]) -> aiomysql.Pool:
    """The handler's pool on MariaDB, sized as the gateway's by default."""
    return await aiomysql.create_pool(
        host=env["DB_HOST"],
        port=int(env["DB_PORT"]),
        user=env["DB_USER"],
        db=env["DB_NAME"],
        minsize=2,
        maxsize=10,
        autocommit=True,
        charset="utf8mb4",
    )


async def mysql_record(pool: aiomysql.Pool, user: int, shots: list[dict[str, float]]) -> int:
    """M's writes on MariaDB, as postgres_record."""
    now = datetime.now(UTC).replace(tzinfo=None)
    tenths = [round(s["score"] * 10) for s in shots]
    async with pool.acquire() as conn:
        await conn.begin()
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(
                    "INSERT INTO shooting_sessions (user_id, started_at, discipline, shot_count,"
                    " total_tenths, created_at) VALUES (%s, %s, '10m Air Rifle', %s, %s, %s)",
                    (user, now, len(shots), sum(tenths), now),
                )
                session_id: int = cursor.lastrowid
                values = ", ".join(["(%s, %s, %s)"] * len(tenths))
                args = [v for q, t in enumerate(tenths, 1) for v in (session_id, q, t)]
                await cursor.execute(
                    f"INSERT INTO shots (session_id, sequence, score_tenths) VALUES {values}", args
                )
                await cursor.execute(
                    "INSERT INTO activities (kind, created_at, user_id, session_id)"
                    " VALUES ('SESSION_CREATED', %s, %s, %s)",
                    (now, user, session_id),
                )
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
    return session_id


def postgres_app(env: dict[str, str]) -> web.Application:
    pool_key = web.AppKey("pool", asyncpg.Pool)

    async def lifecycle(app: web.Application) -> Any:
        app[pool_key] = await postgres_pool(env)
        yield
        await app[pool_key].close()

    async def n(request: web.Request) -> web.Response:
        return _json(await request.app[pool_key].fetchval(PG_N))

    async def p(request: web.Request) -> web.Response:
        body = await request.json(loads=orjson.loads)
        return _json(await request.app[pool_key].fetchval(PG_P, int(body["id"])))

    async def m(request: web.Request) -> web.Response:
        body = await request.json(loads=orjson.loads)
        user, shots = int(body["userId"]), body["shots"]
        session_id = await postgres_record(request.app[pool_key], user, shots)
        return _json(_created(session_id, shots))

    app = web.Application()
    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/n", n)
    app.router.add_post("/p", p)
    app.router.add_post("/m", m)
    return app


def graphql_floor_app(env: dict[str, str]) -> web.Application:
    """P as the least a GraphQL server can do around the handler's statement: POST /graphql takes the
    gateway's body, parses its document once and caches it by its text, and decodes the user's global
    ID with the gateway's own `decode_id`; the answer is the gateway's, the same JSON (FLOOR_P), with
    what every gateway answer carries (a request id, `Vary: Origin`) and no `Server`. No identity,
    limits, policy, time limit or telemetry: the gap left between the gateway and this is theirs and
    the rest of the GraphQL layer's."""
    pool_key = web.AppKey("pool", asyncpg.Pool)
    documents: dict[str, object] = {}

    async def lifecycle(app: web.Application) -> Any:
        app[pool_key] = await postgres_pool(env)
        yield
        await app[pool_key].close()

    async def graphql(request: web.Request) -> web.Response:
        body = await request.json(loads=orjson.loads)
        query = body["query"]
        if query not in documents:
            documents[query] = parse(query)
        row = await request.app[pool_key].fetchval(FLOOR_P, decode_id(body["variables"]["id"], "User"))
        headers = {"X-Request-Id": request_id_from(None), hdrs.VARY: hdrs.ORIGIN}
        return web.Response(body=row.encode(), headers=headers, content_type="application/json")

    async def no_server_header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.popall(hdrs.SERVER, None)

    app = web.Application()
    app.cleanup_ctx.append(lifecycle)
    app.on_response_prepare.append(no_server_header)
    app.router.add_post("/graphql", graphql)
    return app


def mysql_app(env: dict[str, str]) -> web.Application:
    pool_key = web.AppKey("pool", aiomysql.Pool)

    async def lifecycle(app: web.Application) -> Any:
        app[pool_key] = await mysql_pool(env)
        yield
        app[pool_key].close()
        await app[pool_key].wait_closed()

    async def one(request: web.Request, sql: str, args: tuple[Any, ...] = ()) -> web.Response:
        async with request.app[pool_key].acquire() as conn, conn.cursor() as cursor:
            await cursor.execute(sql, args)
            (value,) = await cursor.fetchone()
        return _json(value)

    async def n(request: web.Request) -> web.Response:
        return await one(request, MY_N)

    async def p(request: web.Request) -> web.Response:
        body = await request.json(loads=orjson.loads)
        return await one(request, MY_P, (int(body["id"]),))

    async def m(request: web.Request) -> web.Response:
        body = await request.json(loads=orjson.loads)
        user, shots = int(body["userId"]), body["shots"]
        session_id = await mysql_record(request.app[pool_key], user, shots)
        return _json(_created(session_id, shots))

    app = web.Application()
    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/n", n)
    app.router.add_post("/p", p)
    app.router.add_post("/m", m)
    return app


def _serve(port: int, floor: bool = False) -> None:
    env = dict(os.environ)
    if floor:
        app = graphql_floor_app(env)
    else:
        app = postgres_app(env) if env["DB_BACKEND"] == "postgres" else mysql_app(env)
    loop = event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=loop, reuse_port=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    parser.add_argument("--floor", action="store_true", help="serve the GraphQL floor under P (PostgreSQL)")
    args = parser.parse_args()
    if args.floor and os.environ.get("DB_BACKEND") != "postgres":
        parser.error("--floor runs on PostgreSQL: DB_BACKEND=postgres")
    if args.processes == 1:
        _serve(args.port, args.floor)
        return
    serve = (args.port, args.floor)
    children = [multiprocessing.Process(target=_serve, args=serve) for _ in range(args.processes)]
    for child in children:
        child.start()

    # The benchmark stops this parent with SIGTERM: pass it on.
    def stop(*_: object) -> None:
        for child in children:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    for child in children:
        child.join()


if __name__ == "__main__":
    main()
