"""Several machines on one: Linux network namespaces joined by a bridge, each process with
its own address, its own host names and its own private /tmp (a mount namespace).

Needs root (CI runs as root) and iproute2; `Hosts.available()` says why not otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Hosts:
    """Hosts `name` -> address on a private /24, reachable from this process too."""

    def __init__(self, names: Sequence[str], workdir: Path):
        tag = f"gt{os.getpid() % 100000}"
        self.tag, self.workdir = tag, workdir
        self.subnet = f"10.213.{os.getpid() % 250}"
        self.bridge = f"{tag}br"
        self.addresses = {name: f"{self.subnet}.{i + 1}" for i, name in enumerate(names)}
        self.namespaces = {name: f"{tag}-{name}" for name in names}
        self.processes: list[subprocess.Popen[bytes]] = []

    @staticmethod
    def available() -> str | None:
        """None if namespaces can be made here, else the reason they cannot."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "iproute2 (ip) is not installed"
        probe = f"gtprobe{os.getpid()}"
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True)
        if made.returncode != 0:
            return f"ip netns add failed: {made.stderr.decode().strip()}"
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
        return None

    def start(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        hosts = "".join(f"{addr} {name}\n" for name, addr in self.addresses.items())
        for i, (name, ns) in enumerate(self.namespaces.items()):
            outside, inside = f"{self.tag}o{i}", f"{self.tag}i{i}"
            _ip("netns", "add", ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", outside, "master", self.bridge, "up")
            _ip("link", "set", inside, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{self.addresses[name]}/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            # `ip netns exec` shows /etc/netns/<ns>/hosts as the host's /etc/hosts.
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(f"127.0.0.1 localhost\n{hosts}")

    def run(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        log: Path,
    ) -> subprocess.Popen[bytes]:
        """Start `command` on host `name`, in `cwd`, with a /tmp of its own."""
        script = 'mount -t tmpfs tmpfs /tmp && cd "$0" && exec "$@"'
        with log.open("ab") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespaces[name], "sh", "-c", script, str(cwd),
                 *command],
                env=dict(env), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def stop(self) -> None:
        # The last started first: clients stop before the servers they use.
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for ns in self.namespaces.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
