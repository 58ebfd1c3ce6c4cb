"""Lab process control: freeze/resume, stop/start, start failures, the CLI, in-process members."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from propylon.lab import Lab, LabCerts, LabStartError, ensure_certs, serve_member

from lab_support import curl, hostport


@pytest.fixture
def small_lab(lab_certs: LabCerts) -> Iterator[Lab]:
    with Lab(only=["blue", "green"], certs_dir=lab_certs.dir, ports="ephemeral") as lab:
        yield lab


def test_freeze_keeps_port_open_but_silent_and_resume_answers(small_lab: Lab) -> None:
    small_lab.freeze("blue")
    assert small_lab.is_frozen("blue")
    socket.create_connection(hostport(small_lab, "blue"), timeout=1).close()  # kernel still accepts
    out = curl("--max-time", "1", small_lab.url("blue"))
    assert out.returncode == 28  # timed out: nobody answers
    assert curl(small_lab.url("green")).stdout == "Response from GREEN"
    small_lab.resume("blue")
    assert curl("--max-time", "5", small_lab.url("blue")).stdout == "Response from BLUE"


def test_stop_refuses_connections_and_start_comes_back_on_the_same_port(small_lab: Lab) -> None:
    url = small_lab.url("blue")
    small_lab.stop("blue")
    assert not small_lab.is_running("blue")
    assert curl(url).returncode == 7  # connection refused
    small_lab.start("blue")
    assert small_lab.url("blue") == url
    assert curl(url).stdout == "Response from BLUE"


def test_restore_undoes_freeze_and_stop(small_lab: Lab) -> None:
    small_lab.freeze("blue")
    small_lab.stop("green")
    small_lab.restore()
    assert curl("--max-time", "5", small_lab.url("blue")).stdout == "Response from BLUE"
    assert curl("--max-time", "5", small_lab.url("green")).stdout == "Response from GREEN"


def test_stopping_a_frozen_member_works(small_lab: Lab) -> None:
    small_lab.freeze("green")
    t0 = time.monotonic()
    small_lab.stop("green")
    assert time.monotonic() - t0 < 4 and not small_lab.is_running("green")


def test_start_failure_names_the_member_and_port(lab_certs: LabCerts) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        lab = Lab(only=["green", "blue"], certs_dir=lab_certs.dir, ports="ephemeral",
                  port_overrides={"blue": [port]})
        t0 = time.monotonic()
        with pytest.raises(LabStartError) as err:
            lab.start()
        assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "blue" in msg and f"127.0.0.1:{port}" in msg and "in use" in msg
    assert not lab.is_running("green")  # the members that did start were stopped again


def test_members_exit_when_the_lab_process_dies(lab_certs: LabCerts) -> None:
    code = ("import sys, json; from propylon.lab import Lab\n"
            f"lab = Lab(only=['blue'], certs_dir={str(lab_certs.dir)!r}, ports='ephemeral').start()\n"
            "print(json.dumps([lab.members['blue'].pid, lab.address('blue')]), flush=True)\n"
            "import time; time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid, (host, port) = json.loads(parent.stdout.readline())
        socket.create_connection((host, port), timeout=1).close()
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("member outlived its lab")


def test_cli_prints_the_endpoint_map_and_stops_on_sigterm(lab_certs: LabCerts) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "propylon.lab", "--certs", str(lab_certs.dir),
                             "--only", "blue,green,blackhole", "--ports", "ephemeral"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "is up" in line:
                break
        text = "".join(lines)
        assert "blue" in text and "green" in text and "blackhole" in text
        blue_url = next(w for w in text.split() if w.startswith("http://127.0.0.1:"))
        assert curl(blue_url).stdout in ("Response from BLUE", "Response from GREEN")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_cli_rejects_unknown_members(lab_certs: LabCerts) -> None:
    out = subprocess.run([sys.executable, "-m", "propylon.lab", "--certs", str(lab_certs.dir),
                          "--only", "purple"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "purple" in out.stderr


def test_serve_member_in_process_on_an_ephemeral_port(lab_certs: LabCerts) -> None:
    async def main() -> None:
        async with serve_member("green", ports=[0], certs=lab_certs) as green:
            host, port = green.endpoints[0].address  # type: ignore[misc]
            assert port != 18081
            proc = await asyncio.create_subprocess_exec(
                "curl", "-sS", f"http://{host}:{port}/", stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            assert out == b"Response from GREEN"
        with pytest.raises(OSError):
            socket.create_connection((host, port), timeout=1).close()
    asyncio.run(main())


def test_certificates_are_reused_while_valid_and_remade_when_broken(tmp_path: Path) -> None:
    certs = ensure_certs(tmp_path)
    first = {p.name: p.read_bytes() for p in tmp_path.glob("*.crt")}
    again = ensure_certs(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.crt")} == first
    assert oct(certs.ca_key.stat().st_mode & 0o777) == "0o600"
    certs.server_cert.write_text("garbage")
    ensure_certs(tmp_path)
    assert again.server_cert.read_bytes() != b"garbage"
    assert certs.ca_cert.read_bytes() == first["ca.crt"]  # the CA stays
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(certs.ca_cert),
                             str(certs.server_cert), str(certs.upstream_cert), str(certs.client_cert)],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                           str(certs.server_cert)], capture_output=True, text=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text and "dev.propylon.test" in text


def test_uds_member_does_not_steal_a_socket_in_use(lab_certs: LabCerts, tmp_path: Path) -> None:
    path = str(tmp_path / "up.sock")
    with Lab(only=["uds"], certs_dir=lab_certs.dir, uds_path=path) as first:
        second = Lab(only=["uds"], certs_dir=lab_certs.dir, uds_path=path)
        with pytest.raises(LabStartError) as err:
            second.start()
        assert "in use" in str(err.value) and path in str(err.value)
        assert curl("--unix-socket", path, "http://x/").stdout == "Response from UDS"
        first.stop("uds")
    Path(path).touch()  # a leftover file nobody listens on is replaced
    with Lab(only=["uds"], certs_dir=lab_certs.dir, uds_path=path):
        assert curl("--unix-socket", path, "http://x/").stdout == "Response from UDS"


def test_server_certificate_is_trusted_for_the_proxy_names(lab_certs: LabCerts) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(lab_certs.server_cert, lab_certs.server_key)

    async def main() -> list[str]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        outs = []
        async with server:
            for extra, url in (([], f"https://127.0.0.1:{port}/"),
                               ([], f"https://localhost:{port}/"),
                               (["--resolve", f"dev.propylon.test:{port}:127.0.0.1"],
                                f"https://dev.propylon.test:{port}/")):
                proc = await asyncio.create_subprocess_exec(
                    "curl", "-sS", "--cacert", str(lab_certs.ca_cert), *extra, url,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, err = await proc.communicate()
                outs.append(out.decode() or err.decode())
        return outs

    assert asyncio.run(main()) == ["ok", "ok", "ok"]


def test_workers_share_the_port_and_freeze_together(lab_certs: LabCerts) -> None:
    with Lab(only=["blue"], certs_dir=lab_certs.dir, ports="ephemeral", workers={"blue": 3}) as lab:
        pids = {json.loads(curl(lab.url("blue") + "/echo").stdout)["server_pid"] for _ in range(60)}
        assert len(pids) >= 2
        lab.freeze("blue")
        assert curl("--max-time", "0.5", lab.url("blue")).returncode == 28
        lab.resume("blue")
        assert curl("--max-time", "5", lab.url("blue")).stdout == "Response from BLUE"
        lab.stop("blue")
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_workers_are_refused_for_members_without_a_shared_socket(lab_certs: LabCerts) -> None:
    lab = Lab(only=["websocket"], certs_dir=lab_certs.dir, ports="ephemeral", workers={"websocket": 2})
    with pytest.raises(LabStartError, match="cannot run several workers"):
        lab.start()
