"""Downloads handed to nginx (EFDB_X_ACCEL_REDIRECT_PREFIX): a real nginx running
deploy/nginx.conf in front of a real `efdb serve`. The file comes through nginx byte for byte
with efdb's headers, and whatever efdb refuses stays refused."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, run_efdb_in_process

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFIX = "/_efdb_files/"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def render_nginx_conf(*, listen: int, upstream: int, export_dir: Path, folder: Path) -> str:
    """deploy/nginx.conf with its EDIT lines set for this run."""
    values = {
        "user": "root" if os.geteuid() == 0 else None,  # the workers must read pytest's tmp
        "pid": f"pid {folder / 'nginx.pid'};",
        "efdb": f"server 127.0.0.1:{upstream};",
        "listen": f"listen 127.0.0.1:{listen};",
        "export store": f"alias {export_dir}/;",
    }
    lines = []
    for line in (PROJECT_ROOT / "deploy" / "nginx.conf").read_text().splitlines():
        marked = re.search(r"^(\s*).*;\s*# EDIT: (.+)$", line)
        if marked is None:
            lines.append(line)
            continue
        value = values[marked.group(2)]
        if marked.group(2) == "user":
            value = f"user {value};" if value else None
        lines.append(marked.group(1) + (value or ""))
    # Temporary files of a non-root run stay in the test's folder.
    temp = f"client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;"
    return "\n".join(lines).replace("http {", "http {\n    " + temp, 1) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_nginx_sends_snapshot_files_that_efdb_has_checked(tmp_path: Path) -> None:
    nginx = nginx_binary()
    if nginx is None:
        if os.environ.get("EFDB_REQUIRE_BROWSER"):  # CI installs nginx-light with chromium
            pytest.fail("nginx is not installed (Debian package nginx-light)")
        pytest.skip("nginx is not installed (Debian package nginx-light)")
    data_dir = tmp_path / "data"
    env = {"EFDB_DATA_DIR": str(data_dir), "EFDB_X_ACCEL_REDIRECT_PREFIX": PREFIX}
    server = ServerProcess(tmp_path, env=env, args=("--no-worker",))
    efdb = server.start()
    listen = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            listen=listen, upstream=server.port, export_dir=data_dir / "exports", folder=tmp_path
        )
    )
    log = (tmp_path / "nginx.log").open("wb")
    front = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        created = run_efdb_in_process("snapshot", "create", env=env, cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        base = f"http://127.0.0.1:{listen}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert front.poll() is None, (tmp_path / "nginx.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        snapshot = httpx.get(f"{base}/v1/snapshots/latest").json()
        entry = {f["name"]: f for f in snapshot["files"]}["factors.parquet"]
        url = f"{base}/v1/snapshots/{snapshot['id']}/factors.parquet"

        # efdb alone answers with the hand-over, not the bytes.
        direct = httpx.get(f"{efdb}/v1/snapshots/{snapshot['id']}/factors.parquet")
        assert direct.headers["x-accel-redirect"] == f"{PREFIX}sha256/{entry['sha256']}.parquet"
        assert direct.content == b""

        response = httpx.get(url)
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == entry["sha256"]
        assert len(response.content) == entry["bytes"]
        stored = data_dir / "exports" / "sha256" / f"{entry['sha256']}.parquet"
        assert response.content == stored.read_bytes()
        assert response.headers["etag"] == f'"{entry["sha256"]}"'
        assert response.headers["content-type"] == "application/vnd.apache.parquet"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "x-accel-redirect" not in response.headers
        assert response.headers["content-disposition"].startswith("attachment;")
        # Ranges are nginx's, of the same bytes; a matching ETag is efdb's 304.
        part = httpx.get(url, headers={"Range": "bytes=4-103"})
        assert part.status_code == 206
        assert part.content == response.content[4:104]
        again = httpx.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
        latest = httpx.get(f"{base}/v1/snapshots/latest/factors.parquet")
        assert latest.content == response.content
        assert latest.headers["content-location"].endswith(f"{snapshot['id']}/factors.parquet")

        # Refused by efdb, whatever nginx could read: an unknown snapshot, the store itself.
        unknown = httpx.get(f"{base}/v1/snapshots/2001-01-01.1/factors.parquet")
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("application/problem+json")
        inside = httpx.get(f"{base}{PREFIX}sha256/{entry['sha256']}.parquet")
        assert inside.status_code == 404
        assert inside.content != response.content
    finally:
        front.terminate()
        front.wait(timeout=30)
        log.close()
        server.stop()
