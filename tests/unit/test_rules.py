"""The alert rules follow the monitoring-mixin conventions that pint checks (pint itself is
not served here): a Conclave prefix, a `for`, a severity, a summary, a description, and a
runbook_url into docs/runbooks.md, whose every section answers what, check and do.
promtool checks and unit-tests the rules in tests/integration/test_chart.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from monitoring import ROOT, alert_rules

RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_URL = re.compile(r"^https://[^#\s]+/docs/runbooks\.md#(?P<section>[a-z0-9-]+)$")
RULES = {rule["alert"]: rule for rule in alert_rules()}


def slug(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def sections() -> dict[str, str]:
    """Each `## ` section of docs/runbooks.md by its anchor, with its text."""
    parts = re.split(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    return {slug(heading): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_slug_reads_headings_as_github_does() -> None:
    assert slug("ConclaveClusterPartitioned") == "conclaveclusterpartitioned"
    assert slug("What to do (now)") == "what-to-do-now"


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_alert_follows_the_mixin_conventions(name: str) -> None:
    rule: dict[str, Any] = RULES[name]
    annotations = rule.get("annotations", {})
    assert re.fullmatch(r"Conclave[A-Z][A-Za-z]+", name)
    assert re.fullmatch(r"\d+[smh]", rule.get("for", ""))
    assert rule.get("labels", {}).get("severity") in ("info", "warning", "critical")
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert 20 <= len(annotations["summary"]) <= 120
    assert "\n" not in annotations["summary"]
    assert not annotations["summary"].endswith(".")  # a title, not a sentence
    assert len(annotations["description"]) >= 80
    assert annotations["description"].endswith(".")


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_runbook_url_resolves_to_its_alert_s_section(name: str) -> None:
    match = RUNBOOK_URL.fullmatch(RULES[name]["annotations"]["runbook_url"])
    assert match is not None
    assert match["section"] == slug(name)
    body = sections().get(match["section"])
    assert body is not None, f"docs/runbooks.md has no section `## {name}`"
    for part in ("**What it means.**", "**What to check.**", "**What to do.**"):
        assert part in body, f"{name}: no {part}"


def test_every_runbook_section_is_an_alert_s() -> None:
    assert sorted(sections()) == sorted(slug(name) for name in RULES)


def test_every_alert_links_the_same_base_url() -> None:
    """The chart replaces the base (prometheus.rules.runbookUrl); one base keeps that exact."""
    bases = {rule["annotations"]["runbook_url"].partition("#")[0] for rule in RULES.values()}
    assert len(bases) == 1
