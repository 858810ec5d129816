"""The GitHub workflows: valid against the workflow schema, and doing what the README says."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hygiene import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
LINTER = Path(sys.executable).with_name("check-jsonschema")


def lint(*paths):
    """Validate workflow files against the GitHub workflow schema vendored by check-jsonschema."""
    if not LINTER.exists():
        pytest.skip("check-jsonschema is not installed (it is in requirements.txt)")
    return subprocess.run(
        [str(LINTER), "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
    )


def load(name):
    # PyYAML reads the key `on` as True (YAML 1.1); normalise it back.
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def test_every_workflow_passes_the_linter():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files, "no workflows"
    result = lint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linter_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "name: broken\non: push\njobs:\n  test:\n    steps:\n      - run: make test\n"
    )
    result = lint(broken)  # a job without runs-on
    assert result.returncode != 0
    assert "runs-on" in result.stdout + result.stderr


def test_tests_run_on_pushes_pull_requests_and_weekly():
    workflow = load("test.yml")
    assert {"push", "pull_request", "schedule"} <= set(workflow["on"])
    cron = workflow["on"]["schedule"][0]["cron"].split()
    assert len(cron) == 5 and cron[2] == cron[3] == "*" and cron[4] != "*", "not a weekly schedule"
    steps = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]
    assert "bash .ci/run" in steps


def test_pages_deploys_the_built_html_from_main():
    workflow = load("pages.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    build = workflow["jobs"]["build"]["steps"]
    assert any(step.get("run") == "make book" for step in build)
    upload = [s for s in build if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]["steps"]
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy)
    assert workflow["permissions"]["pages"] == "write"


def test_workflows_use_the_same_python_as_binder():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()  # e.g. python-3.11
    for name in ("test.yml", "pages.yml"):
        for job in load(name)["jobs"].values():
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/setup-python"):
                    assert f"python-{step['with']['python-version']}" == runtime


def test_linter_is_pinned():
    assert "check-jsonschema==" in (ROOT / "requirements.txt").read_text()
