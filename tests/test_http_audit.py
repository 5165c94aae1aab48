"""The GraphQL-over-HTTP audit of the npm package graphql-http, against both doors.

`tests/http_audit/audit.mjs` runs graphql-http's `serverAudits` with node and prints every result;
`scripts/test` installs its pinned packages (`npm ci` in tests/http_audit). Every MUST and every
SHOULD passes; the MAYs are reported, not required.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import Settings
from tests.served_doors import DOORS, served

AUDIT = Path(__file__).resolve().parent / "http_audit"


async def audit(url: str) -> list[dict[str, Any]]:
    """graphql-http's server audits against `url`, run by node (at most 60 s)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the GraphQL-over-HTTP audit needs Node.js 18 or later")
    if not (AUDIT / "node_modules" / "graphql-http").is_dir():
        pytest.fail(f"graphql-http is not installed: run `npm ci` in {AUDIT} (scripts/test does)")
    process = await asyncio.create_subprocess_exec(
        node, "audit.mjs", url, cwd=AUDIT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    results: list[dict[str, Any]] = json.loads(out)
    return results


@pytest.mark.parametrize("door", DOORS)
async def test_every_must_and_should_of_graphql_over_http_passes(
    door: str, make_settings: Callable[..., Settings]
) -> None:
    async with served(door, make_settings("sqlite")) as url:
        results = await audit(url + "/graphql")
    levels = {level: [r for r in results if r["name"].startswith(level)] for level in ("MUST", "SHOULD")}
    assert len(levels["MUST"]) >= 13 and len(levels["SHOULD"]) >= 23, [r["name"] for r in results]
    failed = [f"{r['name']}: {r['reason']}" for r in levels["MUST"] + levels["SHOULD"] if r["status"] != "ok"]
    assert failed == []
