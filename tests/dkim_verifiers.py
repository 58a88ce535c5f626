"""Two independent DKIM verifiers for the tests: dkimpy, and OpenDKIM's C library through
Debian's `opendkim-testmsg`.

`opendkim-testmsg` looks keys up in the DNS and has no option to read them from a file. So the
messages are verified inside a private network and mount namespace (`unshare -m -n`, root
only): there a small DNS server (dnspython) on 127.0.0.1:53 serves the test keys, and a private
/etc/resolv.conf points at it. Nothing outside the namespace sees either. One namespace serves
a whole batch of messages; each message is one `opendkim-testmsg` process, as a receiver
would run it.

Run as a script, this module is the namespace's side: `unshare -m -n python dkim_verifiers.py
DIR` verifies DIR/*.eml with the records in DIR/zone.json and writes DIR/results.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve()


def dkimpy_verify(message: bytes, records: Mapping[str, str]) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of `message`, in order."""
    import dkim

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        record = records.get(name.decode().rstrip("."))
        return record.encode() if record is not None else None

    def one(index: int) -> bool:
        try:
            return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=dns))
        except dkim.DKIMException:
            return False  # e.g. "body hash mismatch", raised rather than returned

    return [one(i) for i in range(message.count(b"DKIM-Signature:"))]


def opendkim_unavailable() -> str | None:
    """Why opendkim-testmsg cannot run here, or None."""
    if shutil.which("opendkim-testmsg") is None:
        return "opendkim-testmsg chybí (balíček opendkim-tools)"
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return "ověření přes opendkim-testmsg potřebuje root a unshare (soukromé DNS)"
    probe = subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True)
    if probe.returncode:
        return f"unshare nejde použít: {probe.stderr.decode().strip()}"
    return None


def opendkim_verify(
    messages: Sequence[bytes], records: Mapping[str, str], timeout: float = 600
) -> list[tuple[bool, str]]:
    """opendkim-testmsg's verdict (passed, error text) for each message."""
    with tempfile.TemporaryDirectory(prefix="sdruk-opendkim-") as tmp:
        root = Path(tmp)
        for index, message in enumerate(messages):
            (root / f"{index:06d}.eml").write_bytes(message)
        (root / "zone.json").write_text(json.dumps(dict(records)))
        done = subprocess.run(
            ["unshare", "-m", "-n", sys.executable, str(HERE), str(root)],
            capture_output=True,
            timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(done.stderr.decode()[-3000:])
        results = json.loads((root / "results.json").read_text())
    return [(bool(ok), str(error)) for ok, error in results]


# -- inside the namespace --------------------------------------------------------------------


def _serve_dns(zone: Mapping[str, str], ready: threading.Event) -> None:
    import socket

    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdatatype
    import dns.rrset

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    ready.set()
    while True:
        data, peer = sock.recvfrom(4096)
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".")
        record = zone.get(name)
        if record is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            chunks = " ".join('"' + record[i : i + 255] + '"' for i in range(0, len(record), 255))
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "TXT", chunks))
        sock.sendto(response.to_wire(max_size=4096), peer)


def _inside(root: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = root / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions edns0 attempts:1 timeout:2\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    zone = json.loads((root / "zone.json").read_text())
    ready = threading.Event()
    threading.Thread(target=_serve_dns, args=(zone, ready), daemon=True).start()
    ready.wait(5)
    results = []
    for path in sorted(root.glob("*.eml")):
        with path.open("rb") as message:
            done = subprocess.run(
                ["opendkim-testmsg"], stdin=message, capture_output=True, timeout=60
            )
        results.append((done.returncode == 0, done.stderr.decode(errors="replace").strip()))
    (root / "results.json").write_text(json.dumps(results))


if __name__ == "__main__":
    _inside(Path(sys.argv[1]))
