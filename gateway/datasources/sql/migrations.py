"""Numbered SQL migrations, read from a backend's `migrations/` folder and applied once each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files

from gateway.datasources.sql.rows import SqlConnection

__all__ = ["Migration", "apply_migrations", "load_migrations"]

_FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
# The mysql client's convention: a line `DELIMITER //` makes `//` end statements until the next
# `DELIMITER ;`, so that a stored procedure's body, whose statements end with `;`, stays one statement.
_DELIMITER = re.compile(r"^\s*DELIMITER\s+(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _statements(text: str) -> tuple[str, ...]:
    """The file's statements, each ended by the current delimiter at the end of a line (`;` unless
    a DELIMITER line says otherwise); lines that start with `--` are comments."""
    statements: list[str] = []
    delimiter, lines = ";", []
    for line in text.splitlines():
        if line.lstrip().startswith("--"):
            continue
        if (change := _DELIMITER.match(line)) is not None:
            delimiter = change[1]
            continue
        stripped = line.rstrip()
        if stripped.endswith(delimiter):
            lines.append(stripped[: -len(delimiter)])
            statements.append("\n".join(lines))
            lines = []
        else:
            lines.append(line)
    statements.append("\n".join(lines))
    return tuple(s.strip() for s in statements if s.strip())


def load_migrations(package: str) -> list[Migration]:
    """The migrations shipped in `package`/migrations, in version order."""
    found = []
    for entry in files(package).joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            statements = _statements(entry.read_text(encoding="utf-8"))
            found.append(Migration(int(match[1]), match[2], statements))
    return sorted(found, key=lambda m: m.version)


async def apply_migrations(conn: SqlConnection, migrations: list[Migration], recorded: str) -> list[int]:
    """Apply the migrations `conn` has not recorded yet; return their versions.

    `recorded` is the backend's query whose `present` is 1 when the schema_migrations table exists.
    The caller holds the backend's migration lock, so two processes starting at once
    apply each migration exactly once.
    """
    present = await conn.fetch(recorded)
    if not present or not present[0]["present"]:
        # Only when missing: CREATE ... IF NOT EXISTS needs the privilege to create even when the table
        # exists, which a user whose tables an owner created with `gateway init-db` lacks.
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name VARCHAR(255) NOT NULL, applied_at VARCHAR(64) NOT NULL)"
        )
    done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        for statement in migration.statements:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, datetime.now(UTC).isoformat()),
        )
        applied.append(migration.version)
    return applied
