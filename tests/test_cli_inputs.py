"""Bad input to every command: exit 2 and one line on standard error, never a traceback.

Each case is a value a user could type; the sweep doubles as the list of what was tried and
what each now prints (the closing note of issue 13 quotes it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main

ROOT = Path(__file__).resolve().parent.parent
DIFF = str(ROOT / "examples" / "vulnerable.diff")
SHOP = str(ROOT / "examples" / "shop")


def sweep(tmp: Path) -> list[tuple[list[str], dict[str, str], str]]:
    """(argv, environment, expected fragment of the one error line)."""
    a_file = tmp / "a-file"
    a_file.write_text("x")
    garbage = tmp / "garbage.diff"
    garbage.write_bytes(b"\x00\xff not a diff\n")
    secret = {"GITHUB_WEBHOOK_SECRET": "s"}
    return [
        (["review", "--diff", "/dev/null"], {}, "is empty: nothing to review"),
        (["review", "--diff", str(tmp / "empty.diff")], {}, "cannot read diff"),
        (["review", "--diff", str(garbage)], {}, "not a unified diff"),
        (["review", "--diff", str(tmp)], {}, "Is a directory"),
        (["review", "--diff", DIFF, "--output", "/nonexistent/x.json"], {}, "does not exist"),
        (["review", "--diff", DIFF, "--output", str(tmp)], {}, "is a directory"),
        (["review", "--diff", DIFF, "--repo", str(a_file)], {}, "is not a directory"),
        (["review", "--diff", DIFF, "--format", "xml"], {}, "invalid choice"),
        (["review", "--diff", DIFF, "--fail-on", "severe"], {}, "invalid choice"),
        (["review"], {}, "required: --diff"),
        (["review", "--diff", DIFF, "--bogus"], {}, "unrecognized arguments"),
        (["scan", str(a_file)], {}, "neither a directory nor OWNER/REPO"),
        (["scan", "no/such/dir/"], {}, "neither a directory nor OWNER/REPO"),
        (["scan", SHOP, "--max-cost", "-1"], {}, "dollar amount"),
        (["scan", SHOP, "--max-cost", "nan"], {}, "dollar amount"),
        (["scan", SHOP, "--upload-sarif"], {}, "--upload-sarif needs OWNER/REPO"),
        (["scan", SHOP, "--output", "/nonexistent/x.sarif"], {}, "does not exist"),
        (
            ["scan", SHOP, "--state-dir", str(a_file)],
            {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
            "is a file, not a directory",
        ),
        (["scan", "octo/app"], {}, "goes through the GitHub App"),
        (["serve", "--port", "99999"], secret, "not a port"),
        (["serve", "--port", "0"], secret, "not a port"),
        (["serve", "--port", "http"], secret, "not a port number"),
        (["serve"], {}, "GITHUB_WEBHOOK_SECRET is not set"),
        (["serve"], {**secret, "REDIS_URL": "garbage"}, "REDIS_URL must start with"),
        (["serve"], {**secret, "REDIS_URL": "redis://localhost:99999/0"}, "invalid port"),
        (["serve"], {**secret, "REDIS_URL": "redis://localhost/zero"}, "database must be"),
        (["manifest", "--url", "example.com"], {}, "give the scheme and host"),
        (["manifest", "--url", "https://x.example/?a=1"], {}, "query or fragment"),
        (["manifest", "--url", "ftp://x.example"], {}, "give the scheme and host"),
        (["replay", str(tmp / "missing.json"), "--event", "push"], secret, "cannot read"),
        (["replay", str(a_file), "--event", "push"], secret, "is not JSON"),
        (["replay", str(a_file), "--event", "push", "--url", "localhost:8000"], secret, "URL"),
        (["worker", "-Q", "nope"], {}, "unknown queue"),
        (["review", "--diff", DIFF], {"SECREVIEW_UNIT_TOKENS": "many"}, "whole number"),
        (["review", "--diff", DIFF], {"SECREVIEW_MAX_COST_USD": "inf"}, "finite number"),
        (["review", "--diff", DIFF], {"SECREVIEW_MODEL_TIMEOUT": "0"}, "above 0"),
        (["review", "--diff", DIFF], {"SECREVIEW_MODEL_TIMEOUT": "soon"}, "must be a number"),
        (["review", "--diff", DIFF], {"SECREVIEW_LLM_BACKEND": "gpt"}, "'none'"),
        (["review", "--diff", DIFF], {"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        (["review", "--diff", DIFF], {"GITHUB_API_URL": "api.github.com"}, "http:// or https://"),
        (["review", "--diff", DIFF], {"OPENAI_BASE_URL": "localhost:8000"}, "http:// or https://"),
        (["review", "--diff", DIFF], {"GITHUB_APP_ID": "my-app"}, "numeric id"),
        (
            ["review", "--diff", DIFF],
            {"GITHUB_PRIVATE_KEY_PATH": "/nonexistent.pem"},
            "cannot be read",
        ),
        ([], {}, "required: command"),
        (["frobnicate"], {}, "invalid choice"),
    ]


def test_every_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = []
    for argv, env, expected in sweep(tmp_path):
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
            status = main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("secreview: error")]
        report.append(f"{' '.join(argv)} {env or ''} -> {status} {err.strip()}")
        assert status == 2, (argv, err)
        assert "Traceback" not in err, (argv, err)
        assert len(lines) == 1 and expected in lines[0], (argv, env, err)
        assert err.strip() == lines[0], (argv, "only the error line", err)
    print("\n".join(report))  # pytest -s shows what each input now prints
