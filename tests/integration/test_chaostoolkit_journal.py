"""A journal written by ``mlchaos run`` is a Chaos Toolkit journal: the same fields with the same types as the
journal ``chaos run`` writes for the same experiment (mlchaos' additions only under ``mlchaos``), rendered by
chaostoolkit-reporting (``chaos report``, real pandoc), and its experiment loaded and validated by chaoslib's own
loader and validator. Real CLIs in child processes."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.components import require_component
from tests.support.differential import chaos_cli, run_both

pytestmark = pytest.mark.usefixtures("isolated_state")


def python(name: str, func: str, kind: str = "action", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "name": name, **extra,
            "provider": {"type": "python", "module": "testdrivers", "func": func, "arguments": {}}}


EXPERIMENT = {
    "title": "journal compatibility", "description": "one of each entry a journal holds", "tags": ["compat"],
    "contributions": {"reliability": "high"},
    "steady-state-hypothesis": {"title": "echo holds", "probes": [python("holds", "echo", "probe", tolerance=True)]},
    "method": [python("acts", "echo"), python("raises", "fail", "probe")],
    "rollbacks": [python("rolls-back", "echo")],
}


@pytest.fixture(scope="module")
def journals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """(mlchaos' journal file, chaos' journal, mlchaos' journal) of the same experiment."""
    from tests.support.environment import child_env

    workdir = tmp_path_factory.mktemp("journals")
    path = workdir / "experiment.json"
    path.write_text(json.dumps(EXPERIMENT), encoding="utf-8")
    runs = run_both(path, workdir, child_env(tmp_path_factory.mktemp("state")))
    return workdir / "mlchaos-journal.json", runs.chaos, runs.mlchaos


def entries(journal: dict[str, Any]) -> list[dict[str, Any]]:
    states = journal["steady_states"]
    return [*states["before"]["probes"], *states["after"]["probes"], *journal["run"], *journal["rollbacks"]]


def test_fields_and_types_are_chaos_toolkits_with_mlchaos_additions_under_its_key(journals):
    _, chaos, ml = journals
    assert set(ml) - set(chaos) == {"mlchaos"}
    assert set(chaos) <= set(ml)
    for key in chaos:
        assert type(ml[key]) is type(chaos[key]), key
    assert set(ml["steady_states"]) == set(chaos["steady_states"]) == {"before", "after", "during"}
    for when in ("before", "after"):
        assert set(ml["steady_states"][when]) == set(chaos["steady_states"][when])
    assert len(entries(ml)) == len(entries(chaos)) == 5
    for ours, theirs in zip(entries(ml), entries(chaos), strict=True):
        assert set(ours) == set(theirs), ours["activity"]["name"]
        assert ours["activity"] == theirs["activity"]
        assert (ours["status"], ours.get("tolerance_met"), ours["output"]) == \
               (theirs["status"], theirs.get("tolerance_met"), theirs["output"])
    failed = [e for e in entries(ml) if e["status"] == "failed"]
    assert [e["activity"]["name"] for e in failed] == ["raises"]
    # the exception as chaoslib formats it: traceback lines, the last one naming the error
    assert failed[0]["exception"][-1] == entries(chaos)[3]["exception"][-1] == \
           "chaoslib.exceptions.ActivityFailed: RuntimeError: boom\n"
    # chaos adds ``dry: null`` to its copy of the experiment (its dry-run mode); mlchaos keeps the file's own
    assert ml["experiment"] == {k: v for k, v in chaos["experiment"].items() if k != "dry"} == EXPERIMENT


@pytest.mark.parametrize("export_format", ["markdown", "html"])
def test_chaostoolkit_reporting_renders_an_mlchaos_journal(journals, tmp_path, subprocess_env, export_format):
    require_component("pandoc", shutil.which("pandoc") is not None,
                      "apt-get install pandoc (scripts/install-system-packages.sh)")
    journal, _, _ = journals
    report = tmp_path / f"report.{export_format}"
    proc = subprocess.run([str(chaos_cli()), "--no-version-check", "report", "--export-format", export_format,
                           str(journal), str(report)], env=subprocess_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = " ".join(html.unescape(report.read_text(encoding="utf-8")).split())  # pandoc wraps lines
    # the report shows the hypothesis, the method's activities and the contributions (it never shows rollbacks)
    expected_texts = ["journal compatibility", "one of each entry a journal holds", "acts", "raises", "echo holds",
                      "reliability"]
    if export_format == "markdown":  # in HTML, the highlighted code splits it into spans
        expected_texts.append("RuntimeError: boom")
    for expected in expected_texts:
        assert expected in text, expected


def test_chaoslib_loads_and_validates_the_journals_experiment(journals, tmp_path, subprocess_env):
    """chaoslib's loader reads the experiment an mlchaos journal holds, and its validator accepts it: a journal
    can be re-run with ``chaos run``."""
    journal, _, _ = journals
    code = ("import json, sys\n"
            "from chaoslib.loader import load_experiment\n"
            "from chaoslib.experiment import ensure_experiment_is_valid\n"
            "from chaoslib.types import Journal\n"
            "journal: Journal = json.load(open(sys.argv[1]))\n"
            "open(sys.argv[2], 'w').write(json.dumps(journal['experiment']))\n"
            "experiment = load_experiment(sys.argv[2])\n"
            "ensure_experiment_is_valid(experiment)\n"
            "print('VALID', experiment['title'])\n")
    proc = subprocess.run([sys.executable, "-c", code, str(journal), str(tmp_path / "again.json")],
                          env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "VALID journal compatibility" in proc.stdout, proc.stdout + proc.stderr
