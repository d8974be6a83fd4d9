"""Conformance through the real gateway runner: every source kind, against its real peer, behaves the same.

``test_source_conformance`` proves the adapter contract; this proves what a user sees on the broker when the
runner drives each kind (``Gateway`` with its supervisor, batcher, buffer and MQTT session): the values flow;
the retained meta lists exactly the config's signals; peer death writes a comm-lost marker for every signal
and the runner retries with backoff (state ``disconnected``, the reason and the next attempt in the status, a
handful of attempts, not a tight loop); the peer back → values again, after the marker and stamped after the
peer came back; and the gateway stops cleanly with the peer dead (close never raises).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from datafactory.contract.payload import decode_meta
from datafactory.contract.quality import BAD_NO_COMMUNICATION
from datafactory.contract.sample import now_us
from tests.support.gateway_env import Collector, GatewayThread, collect, plant
from tests.test_source_conformance import CELL, PEERS, Peer, running_peer

pytestmark = pytest.mark.integration


@pytest.fixture(params=sorted(PEERS))
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Peer]:
    with running_peer(request.param, tmp_path) as p:
        yield p


def _status(col: Collector) -> dict[str, Any]:
    payload = col.last("/status")
    return orjson.loads(payload)["sources"]["src"] if payload else {}


def _arrived(col: Collector, value: float, after_us: int = 0) -> bool:
    return any(s.signal == "power" and s.value == value and s.time_us >= after_us for _, s in col.data_samples())


def test_runner_marks_the_gap_backs_off_and_resumes(peer: Peer, tmp_path: Any, mqtt_url: str, enterprise: str) -> None:
    cfg = plant(enterprise, sources=[peer.source()], cells=[CELL])
    signals = {b.signal for b in cfg.sources[0].signal_bindings()}
    with collect(mqtt_url, f"df/v1/{enterprise}/#") as col:
        gw = GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path)
        with gw:
            assert col.wait_for(lambda: _status(col).get("state") == "connected", 20), _status(col)
            time.sleep(0.5)  # subscriptions in place
            peer.produce(31.5)
            assert col.wait_for(lambda: _arrived(col, 31.5)), f"{peer.kind}: no value through the runner"
            meta = col.last("/meta")
            assert meta is not None and {s.name for s in decode_meta(meta).signals} == signals

            peer.kill()
            lost = [s for _, s in col.data_samples() if s.quality == BAD_NO_COMMUNICATION]

            def marked() -> bool:
                nonlocal lost
                lost = [s for _, s in col.data_samples() if s.quality == BAD_NO_COMMUNICATION]
                return {s.signal for s in lost} >= signals

            assert col.wait_for(marked, 20), f"{peer.kind}: markers {lost}"
            attempts = _status(col).get("attempts", 0)
            time.sleep(4)  # backoff 0.5 s doubling to 5 s, jittered: a few attempts in 4 s
            status = _status(col)
            assert status["state"] in ("disconnected", "connecting"), status
            assert status["last_error"], status
            assert 1 <= status["attempts"] - attempts <= 6, (peer.kind, attempts, status)

            revived_us = now_us()
            peer.revive()
            assert col.wait_for(lambda: _status(col).get("state") == "connected", 30), _status(col)
            assert _status(col)["reconnects"] >= 1
            time.sleep(0.5)
            peer.produce(32.5)
            assert col.wait_for(lambda: _arrived(col, 32.5, revived_us - 1000)), f"{peer.kind}: nothing after revival"
            samples = [s for _, s in col.data_samples() if s.signal == "power"]
            gap = max(i for i, s in enumerate(samples) if s.quality == BAD_NO_COMMUNICATION)
            back = next(i for i, s in enumerate(samples) if s.value == 32.5)
            assert back > gap and samples[back].time_us >= samples[gap].time_us

            peer.kill()  # the gateway must stop cleanly with its peer dead
        assert gw.error is None, gw.error
