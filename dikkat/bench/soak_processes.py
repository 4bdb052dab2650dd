"""The soak benchmark's other processes: one holds the database's write lock, one activates a
head version through the Store, as a rollback on another host does."""

from __future__ import annotations

import asyncio
import sys

__all__ = ["activate_version", "hold_write_lock"]

# Holds the write lock for argv[2] seconds (prints how long it waited for it).
LOCK_SCRIPT = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=120)
asked = time.monotonic()
conn.execute("BEGIN IMMEDIATE")
print(f"{time.monotonic() - asked:.3f}", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""
# Activates head version argv[2] through the Store.
ACTIVATE_SCRIPT = """
import asyncio, sys
from pathlib import Path
from dikkat.storage.store import Store

async def main():
    store = await Store.open(Path(sys.argv[1]))
    try:
        await store.activate_version(int(sys.argv[2]))
    finally:
        await store.close()

asyncio.run(main())
"""


async def hold_write_lock(db: str, hold_s: float) -> tuple[int, str]:
    """Another process holds the write lock of SQLite file `db` for `hold_s` seconds; its exit
    code and its output (on success: the seconds it waited for the lock)."""
    return await _run_python(LOCK_SCRIPT, db, f"{hold_s:.3f}")


async def activate_version(db: str, version: int) -> tuple[int, str]:
    """Another process activates head `version` in SQLite file `db`; its exit code and output."""
    return await _run_python(ACTIVATE_SCRIPT, db, str(version))


async def _run_python(script: str, *args: str) -> tuple[int, str]:
    """Run `script` in another Python process; its exit code and its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return int(process.returncode or 0), out.decode(errors="replace")
