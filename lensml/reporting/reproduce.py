"""The report's last section: every study's command, then the report's own."""

from __future__ import annotations

from lensml.reporting.core import Report


def render(r: Report) -> None:
    cmds = [s["command"] for s in r.s.values() if s.get("command")]
    r.add("## Reproduce\n")
    r.add(
        "```bash\n# every study at full scale, then this report (see experiments/run_all.sh)\n"
        + "\n".join(cmds)
        + f"\npython -m lensml.report name={r.name}\n"
        "# tiny versions (seconds): add scale=tiny, as in tests/e2e/test_studies.py\n```\n"
    )
