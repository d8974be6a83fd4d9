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


async def _retained(mqtt_url: str | None, topic_filter: str, wait_s: float) -> dict[str, bytes]:
    """Retained messages on ``topic_filter``, collected for ``wait_s`` seconds."""
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
        while loop.time() < deadline and not (exact and got):  # one exact topic: done once its message is in
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
    """Publish ``cfg`` retained to ``topic``; with ``wait_s``, wait for the gateway's status to mention it and
    return that status (None when the gateway did not answer in time)."""
    url, password = _url(mqtt_url)
    version = cfg.config_version()
    status_topic = topic.rsplit("/", 1)[0] + "/status"
    answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
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
        if status.get("config_version") == version or (acked.done() and version in error):
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
            await session.subscribe(status_topic, qos=1)
        mids.add(session.publish(topic, encode_config(cfg.model_dump(mode="json"), version=version), retain=True))
        await asyncio.wait_for(acked, timeout=10)
        if wait_s <= 0:
            return None
        try:
            return await asyncio.wait_for(answer, timeout=wait_s)
        except TimeoutError:
            return None
    except TimeoutError as err:
        raise ConnectionLost(session.url, "the broker did not acknowledge the config") from err
    finally:
        await session.close()
