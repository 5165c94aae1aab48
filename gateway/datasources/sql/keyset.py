"""Lists as SQL: keyset pages in either direction, and the filters of the lists that have them."""

from __future__ import annotations

from typing import Any

from gateway.datasources.records import Page, SessionFilter

__all__ = ["activity_conditions", "page_keyset", "session_conditions", "where_clause"]


def page_keyset(columns: tuple[str, ...], descending: bool, page: Page) -> tuple[list[str], list[Any], str]:
    """The page's cursor conditions, their arguments, and its ORDER BY (reversed for a backward page).

    `columns` are the list's sort key, the row's id last; the list runs in one direction.
    """
    conditions: list[str] = []
    args: list[Any] = []
    # `after` keeps the rows later in the list's order, `before` the earlier ones.
    for values, greater in ((page.after, not descending), (page.before, descending)):
        if values is None:
            continue
        op = ">" if greater else "<"
        if len(columns) == 1:
            conditions.append(f"{columns[0]} {op} ?")
            args.append(values[0])
        else:
            key, row_id = columns
            conditions.append(f"({key} {op} ? OR ({key} = ? AND {row_id} {op} ?))")
            args += [values[0], values[0], values[1]]
    direction = "DESC" if descending != page.backward else "ASC"
    return conditions, args, ", ".join(f"{column} {direction}" for column in columns)


def where_clause(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def session_conditions(where: SessionFilter) -> tuple[list[str], list[Any]]:
    conditions: list[str] = []
    args: list[Any] = []
    for column, op, value in (
        ("s.user_id", "=", where.user_id),
        ("s.group_id", "=", where.group_id),
        ("s.discipline", "=", where.discipline),
        ("s.started_at", ">=", where.started_after),
        ("s.started_at", "<", where.started_before),
    ):
        if value is not None:
            conditions.append(f"{column} {op} ?")
            args.append(value)
    return conditions, args


def activity_conditions(user_id: int | None, group_id: int | None) -> tuple[list[str], list[Any]]:
    pairs = [(column, value) for column, value in (("a.user_id", user_id), ("a.group_id", group_id))]
    given = [(column, value) for column, value in pairs if value is not None]
    return [f"{column} = ?" for column, _ in given], [value for _, value in given]
