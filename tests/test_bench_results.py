"""bench/results.md: each tool rewrites its own section and keeps every other's, in any order."""

from pathlib import Path

from bench import sections
from bench.memory import LONG_RUN
from bench.subscriptions import MARKER


def _results(tmp_path: Path) -> Path:
    results = tmp_path / "results.md"
    results.write_text(
        f"# full run\n\nP 0.73\n\n{MARKER}\n\n## Subscriptions\n\np99 58.5\n\n"
        f"{LONG_RUN}\n\n## Memory over a long mixed load\n\nslope +0.003\n"
    )
    return results


def test_a_section_is_rewritten_in_place_and_the_others_kept(tmp_path: Path) -> None:
    results = _results(tmp_path)
    sections.replace(results, MARKER, "## Subscriptions\n\np99 40.0")
    text = results.read_text()
    assert "p99 40.0" in text and "p99 58.5" not in text
    assert text.index("P 0.73") < text.index(MARKER) < text.index(LONG_RUN)
    assert "slope +0.003" in text  # the section after it survives

    sections.replace(results, LONG_RUN, "## Memory over a long mixed load\n\nslope +0.001")
    text = results.read_text()
    assert "slope +0.001" in text and "slope +0.003" not in text
    assert "p99 40.0" in text and text.count(LONG_RUN) == 1 and text.count(MARKER) == 1


def test_a_missing_section_is_added_at_the_end(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    results.write_text("# full run\n\nP 0.73\n")
    sections.replace(results, LONG_RUN, "## Memory\n\nslope +0.001")
    assert results.read_text() == f"# full run\n\nP 0.73\n\n{LONG_RUN}\n\n## Memory\n\nslope +0.001\n"


def test_the_full_run_keeps_every_marked_section(tmp_path: Path) -> None:
    results = _results(tmp_path)
    kept = sections.kept(results)
    assert kept.startswith(MARKER) and "p99 58.5" in kept and "slope +0.003" in kept
    assert "P 0.73" not in kept
    assert sections.kept(tmp_path / "none.md") == ""


def test_a_marker_quoted_inside_a_line_is_not_a_section(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    results.write_text(f"# full run\n\nthe subscriptions keep `{MARKER}` as theirs\n")
    sections.replace(results, MARKER, "## Subscriptions\n\np99 40.0")
    text = results.read_text()
    assert text.startswith(f"# full run\n\nthe subscriptions keep `{MARKER}` as theirs\n\n{MARKER}\n")
    assert text.endswith("p99 40.0\n")
    assert sections.kept(results).startswith(MARKER) and "full run" not in sections.kept(results)
