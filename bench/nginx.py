"""Debian's nginx (and curl) for the download benchmark: installed when missing, run on loopback.

``ensure_tools()`` installs ``nginx-light`` and ``curl`` with apt-get when they are missing (as
root; otherwise it says what to install). ``Nginx(root)`` serves the files under ``root`` on
127.0.0.1 with ``sendfile`` and logs ``$request_time`` for every request, so each client's
transfer time is read from the server (``request_time(tag)``), not from process start-up.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from bench.apt import ensure

NGINX_CONF = """
worker_processes 1;
user root root;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format timing '$request_uri $status $body_bytes_sent $request_time';
    access_log {tmp}/access.log timing;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp}/tmp;
    proxy_temp_path {tmp}/tmp;
    fastcgi_temp_path {tmp}/tmp;
    uwsgi_temp_path {tmp}/tmp;
    scgi_temp_path {tmp}/tmp;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""

NGINX = "/usr/sbin/nginx"


def ensure_tools() -> tuple[str, str]:
    """Paths of nginx and curl, installing Debian's ``nginx-light``/``curl`` when missing."""
    nginx = shutil.which("nginx") or NGINX
    ensure({nginx: "nginx-light", "curl": "curl"}, "the download benchmark")
    nginx = shutil.which("nginx") or NGINX
    curl = shutil.which("curl")
    if not Path(nginx).exists() or curl is None:
        raise SystemExit("nginx or curl still missing after apt-get install")
    return nginx, curl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    """``with Nginx(www) as server: server.url("payload.bin")`` — stopped on exit."""

    def __init__(self, root: Path, nginx: str = NGINX) -> None:
        self.root = root
        self.nginx = nginx
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="otatui-bench-nginx-")
        self.work = Path(self._tmp.name)
        self.log = self.work / "access.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> Nginx:
        (self.work / "tmp").mkdir()
        conf = self.work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.work, root=self.root, port=self.port))
        self._proc = subprocess.Popen(
            [self.nginx, "-p", str(self.work), "-c", str(conf), "-e", str(self.work / "e.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return self
            except OSError:
                if self._proc.poll() is not None:
                    break
                time.sleep(0.02)
        self.__exit__(None, None, None)
        raise SystemExit("nginx did not start")

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None
        self._tmp.cleanup()

    def request_time(self, tag: str) -> float:
        """Seconds nginx spent on the request whose query ends with ``r=<tag>``."""
        for _ in range(250):
            for line in self.log.read_text().splitlines():
                uri, status, _sent, seconds = line.split()
                if uri.endswith(f"r={tag}"):
                    if status != "200":
                        raise SystemExit(f"nginx answered {status} for {uri}")
                    return float(seconds)
            time.sleep(0.02)
        raise SystemExit(f"no access-log line for {tag}")
