"""The service as a built wheel: installed into a clean virtualenv, it migrates, seeds and
serves from any directory; and in the container image's layout (application read-only, an
unprivileged user, the data directory the only place it may write) it issues tokens.

No Docker engine runs here: the image's layout is reproduced from the Dockerfile itself (its
environment and start command), with the wheel built from this checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.test_dockerfile import DOCKERFILE, env_of, final_stage, parse_dockerfile, start_command

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534


def _world_usable(path: Path) -> bool:
    """Every directory on the way to `path` lets any user through (an unprivileged user runs
    the interpreter in the image test)."""
    resolved = path.resolve()
    for directory in [*resolved.parents]:
        if not directory.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(resolved.stat().st_mode & stat.S_IROTH)


def _interpreter() -> str:
    """A Python >= 3.11 that any user may run: this one, or the system's."""
    candidates = [
        Path(getattr(sys, "_base_executable", sys.executable)),
        Path("/usr/bin/python3.11"),
        Path("/usr/bin/python3"),
    ]
    for candidate in candidates:
        if not candidate.exists() or not _world_usable(candidate):
            continue
        version = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.version_info >= (3, 11))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if version.stdout.strip() == "True":
            return str(candidate)
    pytest.fail(f"no Python >= 3.11 that every user may run among {candidates}")


def _clean_env(**extra: str) -> dict[str, str]:
    """No EFDB_* setting and no path back to this checkout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("EFDB_") and key not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    env.update(extra)
    return env


@dataclass(frozen=True)
class Installed:
    root: Path
    venv: Path

    @property
    def efdb(self) -> Path:
        return self.venv / "bin" / "efdb"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _build_context(target: Path) -> Path:
    """A copy of what Docker's build context holds (the `!` lines of .dockerignore): the build
    needs nothing else, and never writes into the checkout (other test workers build too)."""
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    kept = [line[1:].strip() for line in lines if line.startswith("!")]
    debris = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.egg-info")
    for name in kept:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=debris)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    """A wheel built from this checkout (through its sdist, as a package index would build
    it), installed into a fresh virtualenv outside the checkout, readable by every user."""
    root = Path(tempfile.mkdtemp(prefix="efdb-wheel-"))
    root.chmod(0o755)
    uv = [sys.executable, "-m", "uv"]
    try:
        source = _build_context(root / "src")
        built = subprocess.run(
            [*uv, "build", "--quiet", "--out-dir", str(root / "dist"), str(source)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert built.returncode == 0, built.stderr
        wheels = sorted((root / "dist").glob("efdb-*.whl"))
        assert len(wheels) == 1, wheels
        venv = root / "venv"
        for step in (
            [*uv, "venv", "--quiet", "--python", _interpreter(), str(venv)],
            [
                *uv, "pip", "install", "--quiet", "--compile-bytecode",
                "--python", str(venv / "bin" / "python"), str(wheels[0]),
            ],
        ):  # fmt: skip
            done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
            assert done.returncode == 0, done.stderr
        # Readable and runnable by everyone, writable by no one but root.
        subprocess.run(["chmod", "-R", "a+rX,go-w", str(root)], check=True)
        yield Installed(root, venv)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(
    argv: list[str], *, env: dict[str, str], cwd: Path, prefix: list[str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


class Serving:
    """`efdb serve` of the installed wheel in a child process; its log goes to a file."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, base: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"efdb serve exited: {self.log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        pytest.fail(f"efdb serve was not ready in {timeout:g} s: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _token(base: str, client: dict[str, str]) -> str:
    answer = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_the_wheel_carries_its_migrations_and_seed_data(installed: Installed) -> None:
    where = subprocess.run(
        [
            str(installed.python),
            "-c",
            "import app, app.core.config as c; print(app.__file__); "
            "print(c.shipped_path('migrations')); print(c.shipped_path('seed_data'))",
        ],
        cwd=installed.root,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    package, migrations, seed = (Path(line) for line in where.stdout.splitlines())
    site_packages = package.parent.parent
    assert site_packages.is_relative_to(installed.venv), "the wheel's package was not imported"
    assert migrations.is_relative_to(site_packages)
    assert (migrations / "env.py").is_file()
    assert (seed / "reference" / "gwp100.csv").is_file()
    shipped = sorted(p.name for p in (REPO / "migrations" / "versions").glob("*.py"))
    assert sorted(p.name for p in (migrations / "versions").glob("*.py")) == shipped


def test_an_installed_wheel_migrates_seeds_and_serves_from_any_directory(
    installed: Installed, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env()
    efdb = str(installed.efdb)

    upgraded = _run(["db", "upgrade"], env=env, cwd=elsewhere, prefix=[efdb])
    assert upgraded.returncode == 0, upgraded.stderr
    seeded = _run(["seed"], env=env, cwd=elsewhere, prefix=[efdb])
    assert seeded.returncode == 0, seeded.stderr
    assert json.loads(seeded.stdout)["datasets"] >= 3
    created = _run(
        ["client", "create", "--admin", "--scope", "factors:read"],
        env=env,
        cwd=elsewhere,
        prefix=[efdb],
    )
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = Serving(
        [efdb, "serve", "--port", str(port), "--no-worker"],
        env=env,
        cwd=elsewhere,
        log=tmp_path / "serve.log",
    )
    try:
        server.wait_ready(base)
        token = _token(base, client)
        factors = httpx.get(
            f"{base}/v1/factors",
            params={"region": "CN"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert factors.status_code == 200
        assert factors.json()["items"], "the seed datasets were not loaded"
    finally:
        server.stop()
    # Everything it wrote is in the default data directory, ./var of where it ran.
    assert {path.name for path in elsewhere.iterdir()} == {"var"}
    assert {"efdb.sqlite3", "signing-key.pem"} <= {p.name for p in (elsewhere / "var").iterdir()}
    # With no source checkout, `efdb openapi` writes where it runs, not into site-packages.
    exported = _run(["openapi"], env=env, cwd=elsewhere, prefix=[efdb])
    assert exported.returncode == 0, exported.stderr
    assert json.loads((elsewhere / "openapi.json").read_text())["paths"]
    assert not list(installed.venv.glob("lib/python*/site-packages/openapi"))


def _as_unprivileged_user() -> list[str]:
    """The image's `USER`: as root, `setpriv` to nobody (root would ignore read-only modes);
    otherwise this user already is unprivileged."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root without setpriv (util-linux) to drop to an unprivileged user")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
    }


def test_the_image_layout_issues_tokens(installed: Installed) -> None:
    """The image's start command, as its unprivileged user, with the application and working
    directory read-only: it migrates, seeds, and answers /oauth/token and the JWKS, having
    written only to the data directory (EFDB_DATA_DIR, the image's volume)."""
    stage = final_stage(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))
    image_env = env_of(stage)
    argv = start_command(stage)
    assert argv[:2] == ["efdb", "serve"], argv

    layout = Path(tempfile.mkdtemp(prefix="efdb-image-"))
    try:
        layout.chmod(0o755)
        workdir = layout / "workdir"  # the image's WORKDIR: root's, not the service user's
        workdir.mkdir(mode=0o555)
        data = layout / "data"  # the image's volume
        data.mkdir(mode=0o700)
        user = _as_unprivileged_user()
        if user:
            os.chown(data, NOBODY, NOBODY)
        else:  # not root: make the application itself read-only for this user
            subprocess.run(["chmod", "-R", "a-w", str(installed.venv)], check=True)
        env = _clean_env(**{k: v for k, v in image_env.items() if k.startswith(("EFDB_", "PY"))})
        assert env.get("EFDB_DATA_DIR"), "the image sets no EFDB_DATA_DIR"
        env["EFDB_DATA_DIR"] = str(data)  # the volume, where this test can reach it
        env["HOME"] = str(data)  # the image user's home directory
        # The curated seed: the full one (DESNZ workbooks) is loaded by the test above.
        env["EFDB_SEED_SCOPE"] = "core"
        before = _snapshot(installed.venv)

        created = _run(
            [str(installed.efdb), "client", "create", "--admin", "--scope", "factors:read"],
            env=env,
            cwd=workdir,
            prefix=user,
        )
        # No database yet: the command says what to do instead of creating an empty one.
        assert created.returncode == 1
        assert "efdb db upgrade" in created.stderr, created.stderr

        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        command = [str(installed.efdb), *argv[1:]]
        command[command.index("--host") + 1] = "127.0.0.1"  # 0.0.0.0 in the container
        command[command.index("--port") + 1] = str(port)
        server = Serving([*user, *command], env=env, cwd=workdir, log=layout / "serve.log")
        try:
            server.wait_ready(base)
            created = _run(
                [str(installed.efdb), "client", "create", "--admin", "--scope", "factors:read"],
                env=env,
                cwd=workdir,
                prefix=user,
            )
            assert created.returncode == 0, created.stderr
            token = _token(base, json.loads(created.stdout))
            assert token.count(".") == 2
            jwks = httpx.get(f"{base}/.well-known/jwks.json")
            assert jwks.status_code == 200, jwks.text
            assert jwks.json()["keys"]
        finally:
            server.stop()
        assert not list(workdir.iterdir()), "the service wrote to its working directory"
        assert _snapshot(installed.venv) == before, "the service wrote into its installation"
        written = {path.name for path in data.iterdir()}
        assert {"efdb.sqlite3", "signing-key.pem", "exports"} <= written, written
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(installed.venv)], check=False)
        shutil.rmtree(layout, ignore_errors=True)


def test_every_file_the_package_reads_is_in_the_wheel(installed: Installed) -> None:
    """Each non-Python file under app/ in the checkout (templates, messages, static files,
    problem texts) is installed with the package."""
    site_app = next(installed.venv.glob("lib/python3*/site-packages/app"))
    source = REPO / "app"
    wanted = {
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    }
    assert wanted, "no data files under app/"
    missing = sorted(str(path) for path in wanted if not (site_app / path).is_file())
    assert missing == [], f"the wheel leaves out {missing} (pyproject's package-data)"
