"""One run whichever door a review comes in by: the same change through ``secreview review``, the
App (a pull request) and ``secreview scan`` gives the same fingerprints — with a bandit hit, a
path the config excludes, a suppressed finding and one the second look refutes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.findings import fingerprint
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator
from tests.fakes.github import Pull
from tests.test_driver import make_world
from tests.test_verify import answer_verdicts

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "app/views.py": (
        "import subprocess\n"
        "\n"
        "def search(db, term):\n"
        "    return db.execute(f\"SELECT * FROM items WHERE name = '{term}'\").fetchall()\n"
        "\n"
        "def convert(name):\n"
        '    subprocess.call("convert " + name, shell=True)\n'
        "\n"
        "def load(data):\n"
        "    import pickle\n"
        "    return pickle.loads(data)\n"
        "\n"
        "def calc(expr):\n"
        "    return eval(expr)\n"
    ),
    "app/settings.py": 'AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9xLmP2vT"\n',
    "docs/example.py": 'import os\nos.system("rm -rf " + os.environ["DIR"])\n',
}
REPO = "octo/shop"
HEAD = "d" * 40
MODEL_ENV = ("CLOUDFLARE_", "OPENAI_", "SECREVIEW_", "WORKERS_AI_", "GITHUB_")


def new_file_diff(files: dict[str, str]) -> str:
    """A diff adding ``files`` (what git prints for new files)."""
    out = []
    for path, text in files.items():
        lines = text.splitlines()
        out += [
            f"diff --git a/{path} b/{path}",
            "new file mode 100644",
            "--- /dev/null",
            f"+++ b/{path}",
            f"@@ -0,0 +1,{len(lines)} @@",
            *(f"+{line}" for line in lines),
        ]
    return "\n".join(out) + "\n"


def config(suppress: str) -> str:
    return (
        'exclude: ["docs/**"]\n'
        "verify: true\n"
        "fail_on: none\n"
        f"ignore:\n  - fingerprint: '{suppress}'\n    reason: rotated already\n"
    )


# The secret's fingerprint, as every door computes it (CWE + path + the redacted evidence line).
SUPPRESSED = fingerprint(
    "CWE-798", "app/settings.py", 'AWS_SECRET_ACCESS_KEY = "[REDACTED:aws-secret-key]"'
)


@pytest.fixture
def emulator() -> Iterator[tuple[EmulatorApp, str]]:
    emu = create_emulator(account_id="acct", api_token="tok", script=answer_verdicts({"CWE-95"}))
    emu.state.polls_until_done = 0
    with LiveServer(emu.app) as server:
        yield emu, server.url


def cli(args: list[str], url: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(MODEL_ENV)}
    env = {
        **clean,
        "CLOUDFLARE_ACCOUNT_ID": "acct",
        "CLOUDFLARE_API_TOKEN": "tok",
        "WORKERS_AI_BASE_URL": url + "/client/v4",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args, "--format", "json", "-q", "--no-cache"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1) and proc.stdout, proc.stderr.decode()
    report: dict[str, object] = json.loads(proc.stdout)
    return report


def fingerprints(findings: object) -> set[str]:
    assert isinstance(findings, list)
    return {str(f["fingerprint"]) for f in findings}


def test_review_app_and_scan_report_the_same_fingerprints(
    emulator: tuple[EmulatorApp, str],
    tmp_path: Path,
    redis_url: str,
    app_key: tuple[str, str],
) -> None:
    emu, url = emulator
    checkout = tmp_path / "shop"
    for path, text in FILES.items():
        (checkout / path).parent.mkdir(parents=True, exist_ok=True)
        (checkout / path).write_text(text)
    (checkout / ".github").mkdir()
    (checkout / ".github" / "secreview.yml").write_text(config(SUPPRESSED))
    diff = tmp_path / "pr.diff"
    diff.write_text(new_file_diff(FILES))

    review = cli(["review", "--diff", str(diff), "--repo", str(checkout)], url)
    scan = cli(["scan", str(checkout)], url)

    for world in make_world(redis_url, app_key, WORKERS_AI_BASE_URL=url + "/client/v4"):
        world.github.set_file(REPO, "main", ".github/secreview.yml", config(SUPPRESSED).encode())
        world.github.add_pull(REPO, Pull(7, HEAD, new_file_diff(FILES)))
        assert world.review().startswith("published")
        summary = world.github.issue_comments[0]["body"]
        app = set(summary.split("secreview:open ")[1].split(" -->")[0].split())

    found = fingerprints(review["findings"])
    assert found == fingerprints(scan["findings"]) == app
    rules = {f["rule"] for f in review["findings"]}  # type: ignore[union-attr]
    rules |= {c.split()[-1] for f in review["findings"] for c in f["corroborated_by"]}  # type: ignore[union-attr]
    assert {"B602", "B301", "B307"} <= rules  # bandit's hits: on their own or corroborating
    assert not any(f["path"].startswith("docs/") for f in review["findings"])  # type: ignore[index]
    assert SUPPRESSED not in found  # suppressed by the base-branch config, in every door
    cwes = {f["cwe"] for f in review["findings"]}  # type: ignore[index]
    assert "CWE-95" not in cwes and "CWE-89" in cwes  # refuted; kept (bandit corroborates it)
    assert any(r["path"] == "docs/example.py" for r in review["coverage"]["skipped"])  # type: ignore[index]
    verify_asked = [r for r in emu.state.requests if "verify-0" in json.dumps(r.body)]
    assert verify_asked  # the second look ran and refuted the eval finding
