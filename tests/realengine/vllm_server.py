"""A real vLLM (CPU build) serving a tiny random-weight model on loopback, for the real-engine
tier. The venv comes from `setup_vllm.sh`; the model directory is written at test time by
`make_model.py` (run with the venv's Python); nothing is downloaded.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
MODEL = "tiny"
BLOCK_SIZE = 64
START_TIMEOUT = 1200.0
"""Seconds vLLM may take to start: ~70 s on an idle 2-core machine, far more on a busy one."""


def venv_dir() -> Path:
    return Path(os.environ.get("AGENTLOAD_VLLM_VENV") or ROOT / ".vllm-venv")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A running vLLM: `url` is its root (`url + "/v1"` for OpenAI clients)."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    model_dir: Path

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and its engine processes (its own process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies (a killed pytest must
    not leave a 5 GB server behind)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def make_model(python: Path, out: Path) -> Path:
    subprocess.run([str(python), str(HERE / "make_model.py"), str(out)], check=True,
                   capture_output=True, timeout=600)
    return out


def start(python: Path, model_dir: Path, log: Path, *, block_size: int = BLOCK_SIZE) -> Server:
    """Start vLLM and return once `/health` answers 200 (or raise with the log's tail)."""
    port = free_port()
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB: plenty for short turns, small on a shared box
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "VLLM_SERVER_DEV_MODE": "1",  # /reset_prefix_cache
        "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1", "VLLM_LOGGING_LEVEL": "WARNING",
    }
    cmd = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--load-format", "dummy", "--dtype", "float32", "--enforce-eager",
        "--enable-prefix-caching", "--enable-prompt-tokens-details",
        "--block-size", str(block_size), "--max-model-len", "4096", "--max-num-seqs", "16",
        "--max-num-batched-tokens", "4096",
    ]
    out = log.open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, preexec_fn=_die_with_parent)
    out.close()
    server = Server(f"http://127.0.0.1:{port}", proc, log, model_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM exited with {proc.returncode}:\n{server.tail()}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=5) as resp:
                if resp.status == 200:
                    return server
        except urllib.error.HTTPError as exc:  # not ready yet (it holds the response open)
            exc.close()
        except (urllib.error.URLError, OSError):
            pass
        try:
            proc.wait(1.0)  # wakes at once if the server dies
        except subprocess.TimeoutExpired:
            pass
    server.stop()
    raise RuntimeError(f"vLLM did not answer /health within {START_TIMEOUT:g} s:\n{server.tail()}")

