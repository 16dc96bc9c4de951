"""The README's "Verifying what you downloaded", run as written against `efdb serve` over
loopback (only the port changed): `efdb verify` on a snapshot folder, a version export and a
release statement, then the same snapshot check with joserfc and `sha256sum` alone, and the
tampered copy each of them refuses. The data are the cited seed datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_exports_http import README_BASE, efdb, readme_block

VENV_BIN = Path(sys.executable).parent


def run(script: str, *, cwd: Path, shell: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env = {k: v for k, v in env.items() if not k.startswith("EFDB_")}
    command = (
        ["bash", "-euo", "pipefail", "-c", script] if shell else [sys.executable, "-c", script]
    )
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_readme_verification_flow(served: str, tmp_path: Path) -> None:
    snapshot = efdb("snapshot", "create", cwd=tmp_path)
    work = tmp_path / "researcher"
    work.mkdir()

    downloads = readme_block("sh", "efdb verify snapshot").replace(README_BASE, served)
    done = run(downloads, cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("valid: ") == 3
    assert "FAILED" not in done.stdout
    assert (work / "snapshot" / "manifest.json.jws").exists()

    by_hand = readme_block("python", "manifest.json.jws")
    checked = run(by_hand, cwd=work, shell=False)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("manifest.json signed by ")
    files = readme_block("bash", "sha256sum")
    summed = run(files, cwd=work)
    assert summed.returncode == 0, summed.stderr
    assert "factors.parquet: OK" in summed.stdout

    # A changed manifest: both ways refuse it.
    manifest = work / "snapshot" / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(snapshot["id"].encode(), b"2000-01-01.1", 1))
    refused = run(by_hand, cwd=work, shell=False)
    assert refused.returncode == 1
    assert "manifest.json differs" in refused.stderr
    result = run("efdb verify snapshot --jwks jwks.json", cwd=work)
    assert result.returncode == 1
    assert "FAILED: manifest.json differs from the signed manifest" in result.stdout
