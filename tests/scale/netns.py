"""Run Ray (and whatever talks to it) in a throw-away network + PID namespace, loopback only.

Two halves:

* OUTSIDE (the pytest process, not isolated): `run_in_netns([...])` runs a command in
  `unshare --net --pid --fork --mount-proc`, with `lo` up and nothing else. Nothing in there can
  reach or be reached from the host's network; when the command ends, the kernel SIGKILLs every
  process left in the namespace (Ray's raylet, GCS, workers...), so no Ray process ever outlives
  the test, and `ps`/`ray stop` inside see only the namespace's own processes.
  Files (/tmp, unix sockets such as a PostgreSQL socket dir) are shared with the host.

* INSIDE (the scenario script that run_in_netns starts): `ray_head()` starts
  `ray start --head --block` on 127.0.0.1 with a private temp dir, waits until a driver can
  connect, yields the GCS address ("127.0.0.1:6379"), then stops it.

    reason = netns_unavailable_reason() or ray_unavailable_reason()
    if reason: pytest.skip(reason)
    proc = run_in_netns([sys.executable, "scenario.py"], timeout=300)
    result = json.loads(proc.stdout.splitlines()[-1])
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

NETNS_PREFIX = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child"]
# bash stays PID 1 (no exec): it reaps orphaned Ray workers; when the command ends bash exits and
# the kernel kills everything else in the PID namespace.
# "; exit" keeps bash from exec-ing the command as PID 1 (a Python PID 1 reaps no zombies and
# ignores SIGTERM).
_WRAP = 'ip link set lo up || exit 97; "$@"; exit $?'

# Quiet, small, fast-stopping Ray for tests (all are read by `ray start` and by ray.init()).
RAY_TEST_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage-stats prompt/upload attempt
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # SIGTERM: stop now, not after a 30 s drain
    "RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S": "1",  # 0.1 s default warns on a busy 2-core box
    "RAY_DEDUP_LOGS": "0",
    # Ray >= 2.5x: a *local* ray.init() turns token auth on and writes ~/.ray/auth_token; any later
    # `ray start` that finds that file runs in token mode and clients without it fail. The
    # namespace is loopback-only, so tests pin the mode (production: RAY_AUTH_MODE=token plus
    # RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH on every node and driver).
    "RAY_AUTH_MODE": "disabled",
}


def netns_unavailable_reason() -> str | None:
    """None when `run_in_netns` works here, else a skip reason."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            pkg = "util-linux" if tool == "unshare" else "iproute2"
            return f"'{tool}' not found (Debian package {pkg})"
    try:
        proc = subprocess.run(
            [*NETNS_PREFIX, "bash", "-c", _WRAP, "bash", "true"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot create a network namespace: {exc}"
    if proc.returncode != 0:
        return f"cannot create a network namespace (root needed): {proc.stderr.strip()}"
    return None


def ray_unavailable_reason() -> str | None:
    """None when ray[serve] is importable, else a skip reason."""
    for mod in ("ray", "ray.serve"):
        try:
            if importlib.util.find_spec(mod) is None:
                return f"{mod} is not installed (pip install 'dikkat[scale]')"
        except ModuleNotFoundError:
            return f"{mod} is not installed (pip install 'dikkat[scale]')"
    return None


def run_in_netns(
    argv: Sequence[str],
    *,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` inside a fresh loopback-only network namespace; capture its output."""
    # Ray's temp dir is made out here and removed out here: if the timeout kills the namespace,
    # nothing inside gets to clean up (the processes do die: --kill-child + PID namespace).
    temp_dir = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # short: AF_UNIX paths max 107 bytes
    full_env = {**os.environ, **RAY_TEST_ENV, **(env or {}), "RAY_NETNS_TMP": temp_dir}
    full_env.pop("RAY_ADDRESS", None)
    try:
        return subprocess.run(
            [*NETNS_PREFIX, "bash", "-c", _WRAP, "bash", *argv],
            capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd,
        )  # fmt: skip
    finally:
        if not os.environ.get("KEEP_RAY_TMP"):
            shutil.rmtree(temp_dir, ignore_errors=True)


def in_isolated_netns() -> bool:
    """True when this process sees no network interface but `lo` (safe to start Ray here)."""
    # not /sys/class/net: sysfs still shows the host's interfaces after `unshare --net`
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def _ray_bin() -> str:
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else "ray"


@contextlib.contextmanager
def ray_head(
    *,
    num_cpus: int = 2,
    port: int = 6379,
    object_store_bytes: int = 100_000_000,
    connect_timeout_s: float = 90,
    temp_dir: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Start a Ray head on 127.0.0.1 (only inside an isolated namespace); yield its GCS address.

    Other processes in the same namespace join with `ray.init(address=<yielded>)` and get a
    Serve handle with `serve.get_app_handle(name)`.
    """
    if not in_isolated_netns():
        raise RuntimeError("refusing to start Ray outside an isolated network namespace")
    given = temp_dir or os.environ.get("RAY_NETNS_TMP")
    temp_dir = given or tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # short: AF_UNIX path < 108
    log = open(Path(temp_dir) / "ray_start.log", "w")  # noqa: SIM115
    env = {**os.environ, **RAY_TEST_ENV, **(extra_env or {})}
    address = f"127.0.0.1:{port}"
    head = subprocess.Popen(
        [
            _ray_bin(), "start", "--head", "--block",
            "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={num_cpus}",
            "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
            f"--temp-dir={temp_dir}", f"--object-store-memory={object_store_bytes}",
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_until_joinable(address, head, connect_timeout_s, Path(temp_dir) / "ray_start.log")
        yield address
    finally:
        if head.poll() is None:
            head.send_signal(signal.SIGTERM)  # with the drain timeout 0: ~1-2 s
            try:
                head.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
                head.wait()
        log.close()
        if not given and not os.environ.get("KEEP_RAY_TMP"):
            shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_until_joinable(address: str, head: subprocess.Popen, timeout: float, log: Path) -> None:
    """`ray start` opens the GCS port ~1 s in, but drivers can join only after the raylet is up
    (~5 s here); `ray status` succeeds exactly then."""
    host, port = address.split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited {head.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 0.5):
            status = subprocess.run(
                [_ray_bin(), "status", f"--address={address}"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if status.returncode == 0 and "Active:" in status.stdout:
                return
        time.sleep(0.3)
    raise TimeoutError(f"Ray head not joinable after {timeout}s:\n{log.read_text()[-3000:]}")
