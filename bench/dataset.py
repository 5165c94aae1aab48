"""The benchmark's club: 1,000 users, 20 groups, 20,000 sessions of 10 shots, in the gateway's tables.

The tables come from the gateway's own migrations (`gateway init-db`); the rows are generated
by the database itself, the same on PostgreSQL and MariaDB.
"""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pymysql

__all__ = ["USERS", "load_mariadb", "load_postgres"]

USERS, GROUPS, SESSIONS, SHOTS = 1_000, 20, 20_000, 10


def _init_db(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "gateway", "init-db"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=300,
    )


async def load_postgres(port: int, database: str) -> dict[str, str]:
    """Create `database` on the instance at `port`, fill it; returns the gateway's DB_* env for it."""
    admin = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    env = {
        "DB_BACKEND": "postgres",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(port),
        "DB_USER": "postgres",
        "DB_NAME": database,
    }
    _init_db(env)
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=database)
    try:
        async with conn.transaction():
            await conn.execute(f"""
                INSERT INTO users (email, display_name, created_at)
                SELECT 'member' || i || '@club.example', 'Member ' || i, now() - i * interval '1 hour'
                FROM generate_series(1, {USERS}) i;
                INSERT INTO club_groups (name, description, created_at)
                SELECT 'Group ' || i, CASE WHEN i % 2 = 0 THEN 'Shoots on ' || i END, now()
                FROM generate_series(1, {GROUPS}) i;
                INSERT INTO memberships (group_id, user_id, joined_at)
                SELECT 1 + (u.id % {GROUPS}), u.id, now() FROM users u;
                INSERT INTO shooting_sessions (user_id, group_id, started_at, location, discipline,
                    distance_meters, notes, shot_count, total_tenths, created_at)
                SELECT 1 + (i * 7919) % {USERS}, CASE WHEN i % 3 = 0 THEN NULL ELSE 1 + i % {GROUPS} END,
                    timestamptz '2025-01-01 00:00:00+00' + i * interval '17 minutes',
                    'Range ' || (i % 5), '10m Air Rifle', 10, NULL, {SHOTS}, 0, now()
                FROM generate_series(1, {SESSIONS}) i;
                INSERT INTO shots (session_id, sequence, score_tenths, x, y)
                SELECT s.id, q, 80 + (s.id * 31 + q * 17) % 29, NULL, NULL
                FROM shooting_sessions s CROSS JOIN generate_series(1, {SHOTS}) q;
                UPDATE shooting_sessions s SET total_tenths = t.total
                FROM (SELECT session_id, sum(score_tenths) AS total FROM shots GROUP BY session_id) t
                WHERE t.session_id = s.id;
            """)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return env


def load_mariadb(database: str) -> dict[str, str]:
    """The same club in the machine's MariaDB (127.0.0.1:3306, root); returns the DB_* env for it."""
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    admin.close()
    env = {
        "DB_BACKEND": "mysql",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": "3306",
        "DB_USER": "root",
        "DB_NAME": database,
    }
    _init_db(env)
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", database=database, autocommit=False)
    statements = [
        f"""INSERT INTO users (email, display_name, created_at)
            SELECT CONCAT('member', seq, '@club.example'), CONCAT('Member ', seq),
                   UTC_TIMESTAMP(6) - INTERVAL seq HOUR FROM seq_1_to_{USERS}""",
        f"""INSERT INTO club_groups (name, description, created_at)
            SELECT CONCAT('Group ', seq), IF(seq % 2 = 0, CONCAT('Shoots on ', seq), NULL), UTC_TIMESTAMP(6)
            FROM seq_1_to_{GROUPS}""",
        f"INSERT INTO memberships (group_id, user_id, joined_at) SELECT 1 + (id % {GROUPS}), id,"
        " UTC_TIMESTAMP(6) FROM users",
        f"""INSERT INTO shooting_sessions (user_id, group_id, started_at, location, discipline,
                distance_meters, notes, shot_count, total_tenths, created_at)
            SELECT 1 + (seq * 7919) % {USERS}, IF(seq % 3 = 0, NULL, 1 + seq % {GROUPS}),
                TIMESTAMP '2025-01-01 00:00:00' + INTERVAL (seq * 17) MINUTE,
                CONCAT('Range ', seq % 5), '10m Air Rifle', 10, NULL, {SHOTS}, 0, UTC_TIMESTAMP(6)
            FROM seq_1_to_{SESSIONS}""",
        f"""INSERT INTO shots (session_id, sequence, score_tenths, x, y)
            SELECT s.id, q.seq, 80 + (s.id * 31 + q.seq * 17) % 29, NULL, NULL
            FROM shooting_sessions s CROSS JOIN seq_1_to_{SHOTS} q""",
        """UPDATE shooting_sessions s JOIN (SELECT session_id, SUM(score_tenths) AS total FROM shots
            GROUP BY session_id) t ON t.session_id = s.id SET s.total_tenths = t.total""",
    ]
    with conn.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
        conn.commit()
        cursor.execute("ANALYZE TABLE users, club_groups, memberships, shooting_sessions, shots")
    conn.close()
    return env
