"""Config deployment over the broker: ``config deploy``, ``config diff`` and ``gateways``.

A deployed config is the validated plant config published *retained* to the gateway's config topic
(``df/v1/<enterprise>/<site>/_gw/<gateway>/config``) as ``encode_config``; the running gateway picks it up,
applies it without restart and reports the version (or why it rejected it) on its status topic. Because the
message is retained, a gateway that was offline gets it when it connects. Configs carry no secrets: credentials
are only ever names of environment variables on the gateway host.
"""

from __future__ import annotations

import asyncio
import difflib
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import yaml

from datafactory.config.loader import validate_document
from datafactory.config.models import PlantConfig
from datafactory.contract.payload import decode_config, encode_config
from datafactory.contract.topics import PREFIX, TopicKind, gateway_topic
from datafactory.errors import ConfigError, ConnectionLost, ContractError
from datafactory.settings import get_settings
from gateway.mqtt_session import MqttSession


def _url(mqtt_url: str | None) -> tuple[str, str | None]:
    settings = get_settings()
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    return mqtt_url or settings.mqtt_url, password


async def _retained(
    mqtt_url: str | None, topic_filter: str, wait_s: float, *, until: Callable[[dict[str, bytes]], bool] | None = None
) -> dict[str, bytes]:
    """Retained messages on ``topic_filter``, collected for ``wait_s`` seconds (or until ``until(got)``)."""
    url, password = _url(mqtt_url)
    got: dict[str, bytes] = {}

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        if payload:
            got[topic] = payload

    session = MqttSession(url, client_id=f"df-cli-{uuid.uuid4().hex[:8]}", password=password, on_message=on_message)
    await session.connect()
    try:
        await session.subscribe(topic_filter, qos=1)
        exact = "+" not in topic_filter and "#" not in topic_filter
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline and not (exact and got) and not (until is not None and until(got)):
            await asyncio.sleep(0.05)
    finally:
        await session.close()
    return got


async def list_gateways(
    mqtt_url: str | None, *, enterprise: str | None = None, wait_s: float = 2.0
) -> list[dict[str, Any]]:
    """Every gateway with a retained status message: ``path`` (enterprise/site/gateway) plus its status fields."""
    topic_filter = f"{PREFIX}/{enterprise or '+'}/+/_gw/+/status"
    rows = []
    for topic, payload in sorted((await _retained(mqtt_url, topic_filter, wait_s)).items()):
        parts = topic.split("/")
        try:
            status = orjson.loads(payload)
        except orjson.JSONDecodeError:
            status = {"online": None, "error": "status is not JSON"}
        if isinstance(status, dict):
            rows.append({"path": f"{parts[2]}/{parts[3]}/{parts[5]}"} | status)
    return rows


def config_topic(cfg: PlantConfig, gateway: str | None = None) -> str:
    return gateway_topic(cfg.enterprise.id, cfg.site.id, gateway or cfg.gateway.id, TopicKind.CONFIG)


async def deployed_config(mqtt_url: str | None, topic: str, *, wait_s: float = 2.0) -> PlantConfig | None:
    """The config retained on ``topic`` (None if nothing is deployed there)."""
    payload = (await _retained(mqtt_url, topic, wait_s)).get(topic)
    if payload is None:
        return None
    try:
        _, doc = decode_config(payload)
        return validate_document(doc, source=topic)
    except ContractError as err:
        raise ConfigError(topic, [("(payload)", str(err))]) from None


def accept_deployed(payload: bytes, *, topic: str, gateway: tuple[str, str, str]) -> PlantConfig:
    """What a running gateway takes from its config topic: a valid config for this very gateway
    (``gateway`` = enterprise, site, gateway id). Raises ``ConfigError`` or ``ContractError``; their text is the
    reason the gateway reports in its status while it keeps the config it runs."""
    claimed, doc = decode_config(payload)
    cfg = validate_document(doc, source=topic)
    theirs = (cfg.enterprise.id, cfg.site.id, cfg.gateway.id)
    if theirs != gateway:
        problem = f"config {claimed} is for gateway {'/'.join(theirs)}, not {'/'.join(gateway)}"
        raise ContractError("wrong_gateway", problem)
    return cfg


def status_topic(config_topic: str) -> str:
    return config_topic.rsplit("/", 1)[0] + "/status"


async def reported_gateways(mqtt_url: str | None, topic: str, *, wait_s: float = 2.0) -> tuple[bool, list[str]]:
    """Whether the gateway of config ``topic`` has ever reported (a retained status), and the gateways of the
    same site that have — so a typo in ``--gateway`` is caught before a retained config nobody reads is left."""
    ours = status_topic(topic)
    site_filter = ours.rsplit("/", 2)[0] + "/+/status"
    got = await _retained(mqtt_url, site_filter, wait_s, until=lambda seen: ours in seen)
    return ours in got, sorted(t.split("/")[-2] for t in got)


_SETTLED = ("connected", "disconnected", "failed")


def sources_settled(status: dict[str, Any], source_ids: list[str]) -> bool:
    """Every source of the deployed config has left 'connecting': connected, or failed with its reason."""
    sources = status.get("sources") or {}
    return all(isinstance(sources.get(sid), dict) and sources[sid].get("state") in _SETTLED for sid in source_ids)


def outcome(cfg: PlantConfig, status: dict[str, Any] | None, *, gateway: str, topic: str, wait_s: float
            ) -> tuple[int, str]:
    """What ``config deploy`` says after waiting: (0 applied and connected | 1 rejected or a source not
    connected | 3 not confirmed in time, one line). Exit codes as in README "Command line"."""
    version = cfg.config_version()
    if status is None:
        return 3, (f"published {version} to {topic}, not confirmed by gateway {gateway} within {wait_s:g} s "
                   "(is it running? it applies the config when it connects)")
    if status.get("config_version") != version:
        return 1, f"gateway {gateway} REJECTED {version}: {status.get('config_error')}"
    sources = status.get("sources") or {}
    good, bad = [], []
    for src in cfg.sources:
        found = sources.get(src.id)
        state: dict[str, Any] = found if isinstance(found, dict) else {}
        refused = int(state.get("items_refused") or 0)
        extra = f", {refused} item(s) refused" if refused else ""
        if state.get("state") == "connected" and not refused:
            good.append(src.id)
        elif state.get("state") == "connected":
            bad.append(f"{src.id} connected{extra}")
        else:
            why = state.get("last_error") or ("still connecting" if state else "not reported")
            bad.append(f"{src.id} {state.get('state', 'missing')} ({why}){extra}")
    if bad:
        return 1, f"gateway {gateway} runs {version} but not every source works: " + "; ".join(bad)
    return 0, f"gateway applied {version}: " + (f"sources connected: {', '.join(good)}" if good else "no sources")


def render(cfg: PlantConfig | None) -> list[str]:
    if cfg is None:
        return []
    return yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True, sort_keys=False).splitlines(keepends=True)


def diff(local: PlantConfig, deployed: PlantConfig | None, *, local_name: str, topic: str) -> str:
    """A unified diff from the deployed config to the local one ("" when they are the same)."""
    before = f"{topic} ({deployed.config_version() if deployed else 'nothing deployed'})"
    after = f"{local_name} ({local.config_version()})"
    return "".join(difflib.unified_diff(render(deployed), render(local), fromfile=before, tofile=after))


async def deploy(cfg: PlantConfig, mqtt_url: str | None, *, topic: str, wait_s: float = 0.0) -> dict[str, Any] | None:
    """Publish ``cfg`` retained to ``topic``; with ``wait_s``, wait for the gateway's status to report it and
    every source of it connected or failed, and return that status (the last one reporting the version if the
    sources had not settled in time; None when the gateway did not answer at all)."""
    url, password = _url(mqtt_url)
    version = cfg.config_version()
    source_ids = [s.id for s in cfg.sources]
    answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    latest: list[dict[str, Any]] = []
    acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    mids: set[int] = set()

    def on_message(t: str, payload: bytes, retained: bool) -> None:
        try:
            status = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(status, dict) or answer.done():
            return
        error = status.get("config_error") or ""
        if status.get("config_version") == version:  # retained or new: the gateway runs this version
            latest[:] = [status]
            if sources_settled(status, source_ids):
                answer.set_result(status)
        elif acked.done() and version in error:
            answer.set_result(status)

    def on_puback(mid: int) -> None:
        if mid in mids and not acked.done():
            acked.set_result(None)

    session = MqttSession(
        url,
        client_id=f"df-deploy-{uuid.uuid4().hex[:8]}",
        password=password,
        on_message=on_message,
        on_puback=on_puback,
    )
    await session.connect()
    try:
        if wait_s > 0:
            await session.subscribe(status_topic(topic), qos=1)
        mids.add(session.publish(topic, encode_config(cfg.model_dump(mode="json"), version=version), retain=True))
        await asyncio.wait_for(acked, timeout=10)
        if wait_s <= 0:
            return None
        try:
            return await asyncio.wait_for(answer, timeout=wait_s)
        except TimeoutError:
            return latest[0] if latest else None
    except TimeoutError as err:
        raise ConnectionLost(session.url, "the broker did not acknowledge the config") from err
    finally:
        await session.close()
