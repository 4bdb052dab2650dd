"""A throw-away PostgreSQL cluster for tests: initdb + pg_ctl in a temp dir, a DSN, stop, rm.

Works as root (runs the server binaries as the `postgres` user through `runuser`, because initdb
and postgres refuse to run as root) and as an ordinary user (runs them as that user).

    from pg_cluster import pg_cluster, pg_unavailable_reason

    reason = pg_unavailable_reason()
    if reason: pytest.skip(reason)
    with pg_cluster() as pg:
        pg.dsn            # postgresql://postgres@127.0.0.1:PORT/dikkat_test   (asyncpg.connect)
        pg.sqlalchemy_url # postgresql+asyncpg://postgres@127.0.0.1:PORT/dikkat_test
        pg.socket_dir     # unix socket dir; pg.socket_dsn uses it
        pg.stop(); pg.start()  # an outage: the server goes away and comes back on the same port
        pg.freeze(); pg.thaw() # a server that hangs (SIGSTOP), and answers again

pytest (session-scoped: one cluster for the run, a fresh database per test is cheap, ~30 ms):

    @pytest.fixture(scope="session")
    def pg_server():
        reason = pg_unavailable_reason()
        if reason:
            pytest.skip(reason)
        with pg_cluster() as pg:
            yield pg

    @pytest.fixture
    async def pg_url(pg_server):
        name = "t_" + uuid.uuid4().hex[:12]
        pg_server.create_database(name)
        yield pg_server.sqlalchemy_url_for(name)
        pg_server.drop_database(name)
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SERVER_USER = "postgres"

# Durability is pointless for a throw-away cluster; these make initdb/start/tests much faster.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
}


def find_bindir() -> Path | None:
    """Directory holding initdb/pg_ctl: $PG_BINDIR, else Debian's newest /usr/lib/postgresql/N/bin,
    else wherever `initdb` is on PATH (Debian does not put initdb on PATH)."""
    env = os.environ.get("PG_BINDIR")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _server_user() -> str | None:
    """The user to run the server as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    return SERVER_USER


def pg_unavailable_reason() -> str | None:
    """None when a throw-away cluster can be started here, else why not (a pytest skip reason)."""
    bindir = find_bindir()
    if bindir is None:
        return (
            "PostgreSQL server binaries not found (Debian: apt-get install postgresql; "
            "or set PG_BINDIR)"
        )
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not os.access(bindir / tool, os.X_OK):
            return f"{bindir / tool} is missing or not executable"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return "running as root but there is no 'postgres' user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root but 'runuser' (util-linux) is missing"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgCluster:
    bindir: Path
    root: Path  # temp dir: data/, log, unix socket
    port: int
    database: str = "dikkat_test"
    user: str = "postgres"
    host: str = "127.0.0.1"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.root

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def sqlalchemy_url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """For asyncpg.connect / psql (TCP on loopback)."""
        return self.dsn_for(self.database)

    @property
    def sqlalchemy_url(self) -> str:
        """For sqlalchemy.ext.asyncio.create_async_engine."""
        return self.sqlalchemy_url_for(self.database)

    @property
    def socket_dsn(self) -> str:
        """Same database over the unix socket (asyncpg accepts ?host=/dir)."""
        return f"postgresql://{self.user}@/{self.database}?host={self.socket_dir}&port={self.port}"

    # --- running the server binaries as the right user -------------------------------------

    def _run(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        user = _server_user()
        if user is not None:
            cmd = ["runuser", "-u", user, "--", *cmd]
        # cwd: the caller's cwd (e.g. pytest's tmp_path under /tmp/pytest-of-root, mode 700) may
        # be unreadable to `postgres`, which makes initdb warn/fail; run from our own dir.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        proc = subprocess.run(
            cmd, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n"
                f"{self._log_tail()}"
            )
        return proc

    def _log_tail(self) -> str:
        try:
            return "postgres log:\n" + self.log_file.read_text()[-3000:]
        except OSError:
            return ""

    def _psql_args(self, database: str = "postgres") -> list[str]:
        return ["-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, database]

    # --- lifecycle ---------------------------------------------------------------------------

    def init(self) -> None:
        t = time.perf_counter()
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", self.user, "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        self.timings["initdb_s"] = time.perf_counter() - t

    def start(self) -> None:
        t = time.perf_counter()
        options = [
            f"-p {self.port}",
            f"-k {self.socket_dir}",  # unix socket in our dir, not /var/run/postgresql
            f"-c listen_addresses={self.host}",
            *(f"-c {k}={v}" for k, v in FAST_SETTINGS.items()),
        ]
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60",
            "-o", " ".join(options), "start",
        )  # fmt: skip
        self.timings["start_s"] = time.perf_counter() - t

    def create_database(self, name: str) -> None:
        self._run("createdb", *self._psql_args()[:-1], name)

    def drop_database(self, name: str) -> None:
        # FORCE (PG 13+) ends sessions still connected (e.g. a pool a failed test left open).
        self._run("psql", *self._psql_args(), "-v", "ON_ERROR_STOP=1", "-q",
                  "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # fmt: skip

    def psql(self, sql: str, database: str | None = None) -> str:
        proc = self._run("psql", *self._psql_args(database or self.database), "-v",
                         "ON_ERROR_STOP=1", "-At", "-c", sql)  # fmt: skip
        return proc.stdout

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        t = time.perf_counter()
        # fast: roll back open transactions, disconnect clients, clean shutdown (~0.1 s).
        proc = self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30",
                         "stop", check=False)  # fmt: skip
        if proc.returncode != 0:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop",
                      check=False)  # fmt: skip
        self.timings["stop_s"] = time.perf_counter() - t

    # --- outages: stop() and start() again (same port), or a server that hangs ---------------

    @property
    def running(self) -> bool:
        """The server was started and not stopped since (it may be frozen)."""
        return (self.data_dir / "postmaster.pid").exists()

    def _server_pids(self) -> list[int]:
        """The postmaster and every process it started."""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        )
        return [postmaster, *map(int, children.stdout.split())]

    def freeze(self) -> None:
        """The server stops answering, as on a hung host: connections stay open, new ones are
        not accepted, nothing comes back (SIGSTOP to every server process) until `thaw`."""
        self._signal_server(signal.SIGSTOP)

    def thaw(self) -> None:
        """A frozen server answers again (a running one is left as it is)."""
        if self.running:
            self._signal_server(signal.SIGCONT)

    def _signal_server(self, signum: int) -> None:
        """Send `signum` to every server process (one that has just exited is passed over)."""
        for pid in self._server_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


@contextlib.contextmanager
def pg_cluster(database: str = "dikkat_test", port: int | None = None) -> Iterator[PgCluster]:
    """Start a throw-away cluster; yield it; stop it and remove every file, whatever happens."""
    reason = pg_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    bindir = find_bindir()
    assert bindir is not None
    # Directly under /tmp (world-traversable): a dir under a root-only parent (pytest's
    # /tmp/pytest-of-root is 0700) is unreachable for the postgres user.
    root = Path(tempfile.mkdtemp(prefix="dikkat-pg-", dir="/tmp"))
    user = _server_user()
    if user is not None:
        shutil.chown(root, user, user)
    os.chmod(root, 0o700)
    cluster = PgCluster(bindir=bindir, root=root, port=port or _free_port(), database=database)
    try:
        cluster.init()
        for attempt in range(3):
            try:
                cluster.start()
                break
            except RuntimeError:
                # port taken between _free_port() and bind: pick another one
                if attempt == 2 or "could not bind" not in cluster._log_tail():
                    raise
                cluster.port = _free_port()
        t = time.perf_counter()
        cluster.create_database(database)
        cluster.timings["createdb_s"] = time.perf_counter() - t
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
