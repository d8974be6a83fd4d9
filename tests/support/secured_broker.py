"""A real Mosquitto run with the generated broker configuration, and a paho client that records what the broker
answered: shared by the broker-security tests (plain listener and TLS)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.config import load_config_text
from tests.test_config import GOOD


@dataclass
class Broker:
    port: int
    log: Path
    passwords: dict[str, str]
    users: dict[str, str]  # role in the test -> user name
    enterprise_a: str
    enterprise_b: str


def plant_config(enterprise: str, tmp: Path) -> Path:
    path = tmp / f"{enterprise}.yaml"
    path.write_text(GOOD.replace("id: acme", f"id: {enterprise}"))
    load_config_text(path.read_text())  # the test's own input must be valid
    return path


@contextlib.contextmanager
def mosquitto(conf: Path, port: int) -> Iterator[None]:
    """Run ``mosquitto -c conf`` until the block ends; ready once ``port`` accepts connections."""
    if os.geteuid() == 0:  # Mosquitto drops root for the 'mosquitto' user, which cannot read our tmp_path
        conf.write_text(conf.read_text() + "user root\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Client:
    """A paho MQTT v5 client that records what the broker answered."""

    def __init__(
        self, port: int, user: str | None, password: str | None, client_id: str = "", ca: Path | None = None
    ) -> None:
        self.connack: list[int] = []
        self.pubacks: dict[int, int] = {}
        self.subacks: list[list[int]] = []
        self.messages: list[tuple[str, bytes]] = []
        self.event = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or uuid.uuid4().hex, protocol=mqtt.MQTTv5)
        if user:
            self.c.username_pw_set(user, password)
        if ca is not None:
            self.c.tls_set(ca_certs=str(ca))
        self.c.on_connect = self._on_connect
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self.pubacks.__setitem__(mid, rc.value)
        self.c.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.append([r.value for r in rcs])
        self.c.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, bytes(msg.payload)))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.event.wait(30), "no CONNACK"  # a wait, not a bound: a loaded box may take seconds

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connack.append(rc.value)
        self.event.set()

    def wait(self, predicate: Any, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
