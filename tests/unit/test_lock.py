"""The committed locks are what gets installed: they cover pyproject's ranges, agree with each
other, and the environment running these tests is exactly the dev lock."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {
    "requirements.lock": (),
    "requirements-scale.lock": ("scale",),
    "requirements-dev.lock": ("dev", "scale"),
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def locked(name: str) -> dict[str, Version]:
    """Package -> version of the pins in a lock that apply to this interpreter and platform."""
    pins: dict[str, Version] = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        if match := PIN.match(line):
            package, version, marker = match.groups()
            if marker is None or Marker(marker).evaluate():
                pins[canonicalize_name(package)] = Version(version)
    return pins


def project_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] + [
        r for e in extras for r in project["optional-dependencies"][e]
    ]
    return [Requirement(r) for r in wanted]


@pytest.mark.parametrize("lock", list(LOCKS))
def test_a_lock_pins_every_declared_dependency_within_its_range(lock: str) -> None:
    pins = locked(lock)
    assert pins, f"{lock} has no pins"
    for requirement in project_requirements(LOCKS[lock]):
        name = canonicalize_name(requirement.name)
        if name == "torch":  # installed first, from the build that fits the machine
            assert name not in pins
            continue
        assert name in pins, f"{requirement} is not in {lock}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (lock, requirement)


def test_the_locks_agree_on_every_version() -> None:
    dev = locked("requirements-dev.lock")
    for lock in LOCKS:
        for name, version in locked(lock).items():
            assert dev.get(name) == version, (lock, name, version, dev.get(name))


def test_this_environment_is_the_dev_lock() -> None:
    """What `make test` installed is what the lock says: the lock, not the ranges, is tested."""
    differing = {}
    for name, version in locked("requirements-dev.lock").items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            differing[name] = (str(version), installed and str(installed))
    assert not differing, f"installed differs from requirements-dev.lock: {differing}"


def test_make_and_the_image_install_the_same_torch() -> None:
    make = re.search(r"^TORCH_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    docker = re.search(r"^ARG TORCH_VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert make and docker and make.group(1) == docker.group(1)
    assert Version(metadata.version("torch")).base_version == make.group(1)
