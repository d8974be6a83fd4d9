"""OPC-UA source adapter (config ``kind: opcua``): reads a server through one subscription.

Monitored items are created in chunks that respect the server's ``MaxMonitoredItemsPerCall`` (at most 1000 per
CreateMonitoredItems call), with each node's sampling interval and queue size. Notifications are converted to
samples straight from the publish response — no per-item task or event object — because a gateway follows tens
of thousands of items. Keep-alives count as life: if neither data nor a keep-alive arrives for
``keepalive_timeout_s`` the server is considered stalled and the stream raises ``ConnectionLost``.

Raises only ``datafactory.errors.ConnectionLost``; asyncua errors are translated here and in ``opcua_session``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import Subscription

from datafactory.config.models import DeadbandKind, OpcUaNode, OpcUaSource, SignalBinding, TimestampSource
from datafactory.contract.sample import datetime_to_us, now_us
from datafactory.errors import ConnectionLost
from gateway import opcua_folders, opcua_session
from gateway.normalise import Normaliser
from gateway.sources import Reading

_log = logging.getLogger(__name__)

MAX_ITEMS_PER_CALL = 1000


class _Lost:
    """Queued by the connection watchdog when the transport dies."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _DirectSubscription(Subscription):
    """A subscription that hands every publish response to one callback, skipping per-item events."""

    def __init__(self, session: Any, params: ua.CreateSubscriptionParameters, on_publish: Any) -> None:
        super().__init__(session, params, handler=None, queue_maxsize=1)
        self._on_publish = on_publish

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        self._on_publish(publish_result.NotificationMessage.NotificationData)


class OpcUaAdapter:
    def __init__(self, config: OpcUaSource, *, state_dir: Path) -> None:
        self.id = config.id
        self.config = config
        self._state_dir = state_dir
        self._client: Client | None = None
        self._subscription: _DirectSubscription | None = None
        self._queue: asyncio.Queue[list[Reading] | _Lost] = asyncio.Queue()
        self._nodes: list[OpcUaNode] = list(config.nodes)  # plus, once open, the variables found in folders
        self._normalisers: list[Normaliser] = [Normaliser(n) for n in self._nodes]
        self._cells = [n.cell for n in self._nodes]
        self.on_meta_change: Callable[[], None] | None = None  # set by the runner: folders resolved to signals
        self._use_source_time = config.timestamps is TimestampSource.SOURCE
        self._last_life = time.monotonic()
        self.items_failed: dict[str, str] = {}  # node id → status of items the server refused

    def bindings(self) -> list[SignalBinding]:
        return list(self._nodes)

    def counters(self) -> dict[str, int]:
        return {"items_refused": len(self.items_failed)}

    async def open(self) -> None:
        cfg = self.config
        # asyncua probes the server state every watchdog interval with that interval as timeout; a 1 s probe
        # (its default) declares a busy-but-healthy server dead, so probe at the configured stall timeout.
        self._client = client = await opcua_session.connect(
            cfg.endpoint,
            cfg.security,
            cfg.auth,
            state_dir=self._state_dir,
            watchdog_interval_s=cfg.keepalive_timeout_s,
        )
        client.connection_lost_callback = self._connection_lost
        try:
            if cfg.folders:
                await self._resolve_folders(client)
            await self._read_eu_ranges(client)
            await self._subscribe(client)
        except opcua_session.LIBRARY_ERRORS as err:
            raise ConnectionLost(cfg.endpoint, f"subscribing failed: {opcua_session.describe(err)}") from err
        self._last_life = time.monotonic()

    async def _resolve_folders(self, client: Client) -> None:
        found = await opcua_folders.resolve(client, self.config)
        self._nodes = [*self.config.nodes, *found]
        self._normalisers = [Normaliser(n) for n in self._nodes]
        self._cells = [n.cell for n in self._nodes]
        if found and self.on_meta_change is not None:
            self.on_meta_change()  # before the data, so ingest knows the new signals' meta first

    async def _subscribe(self, client: Client) -> None:
        cfg = self.config
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = cfg.publishing_interval_ms
        # A keep-alive at least three times per stall timeout, so a quiet but healthy server never looks stalled.
        params.RequestedMaxKeepAliveCount = max(1, int(cfg.keepalive_timeout_s * 1000 / 3 / cfg.publishing_interval_ms))
        params.RequestedLifetimeCount = params.RequestedMaxKeepAliveCount * 3
        params.MaxNotificationsPerPublish = 0  # no limit
        params.PublishingEnabled = True
        params.Priority = 0
        sub = _DirectSubscription(client.uaclient.session, params, self._on_publish)
        await sub.init()
        self._subscription = sub
        chunk = min(MAX_ITEMS_PER_CALL, await self._server_items_limit(client))
        requests = [self._item_request(i, node) for i, node in enumerate(self._nodes)]
        self.items_failed.clear()
        for start in range(0, len(requests), chunk):
            part = requests[start : start + chunk]
            results = await sub.create_monitored_items(part)
            for req, result in zip(part, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    node = self._nodes[req.RequestedParameters.ClientHandle]
                    self.items_failed[node.node_id] = result.name
        if requests and len(self.items_failed) == len(requests):
            first = next(iter(self.items_failed.items()))
            raise ConnectionLost(
                cfg.endpoint,
                f"the server refused every one of the {len(requests)} configured nodes (first: {first[0]} "
                f"{first[1]}): check the node ids with 'datafactory opcua browse'",
                retryable=False,
            )
        if self.items_failed:
            first = next(iter(self.items_failed.items()))
            _log.warning(
                "%s: the server refused %d of %d items (first: %s %s)",
                cfg.endpoint,
                len(self.items_failed),
                len(requests),
                *first,
            )

    def _item_request(self, index: int, node: OpcUaNode) -> ua.MonitoredItemCreateRequest:
        rv = ua.ReadValueId()
        rv.NodeId = ua.NodeId.from_string(node.node_id)
        rv.AttributeId = ua.AttributeIds.Value
        mparams = ua.MonitoringParameters()
        mparams.ClientHandle = index  # the handle is the index of the node in the config: O(1) lookup per value
        sampling = node.sampling_interval_ms
        mparams.SamplingInterval = self.config.sampling_interval_ms if sampling is None else sampling
        mparams.QueueSize = node.queue_size
        mparams.DiscardOldest = True
        mir = ua.MonitoredItemCreateRequest()
        mir.ItemToMonitor = rv
        mir.MonitoringMode = ua.MonitoringMode.Reporting
        mir.RequestedParameters = mparams
        return mir

    async def _server_items_limit(self, client: Client) -> int:
        node = client.get_node(f"i={ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall}")
        try:
            limit = await node.read_value()
        except opcua_session.LIBRARY_ERRORS:
            return MAX_ITEMS_PER_CALL  # the server does not publish the limit
        return int(limit) if isinstance(limit, int) and limit > 0 else MAX_ITEMS_PER_CALL

    async def _read_eu_ranges(self, client: Client) -> None:
        """Percent deadbands are relative to the EURange property where the server defines one."""
        for norm, node in zip(self._normalisers, self._nodes, strict=True):
            if node.deadband.kind is not DeadbandKind.PERCENT:
                continue
            try:
                prop = await client.get_node(node.node_id).get_child("0:EURange")
                rng = await prop.read_value()
            except opcua_session.LIBRARY_ERRORS:
                norm.eu_span = None
                continue
            norm.eu_span = abs(float(rng.High) - float(rng.Low)) * abs(node.scale)

    def _on_publish(self, data: Sequence[Any] | None) -> None:
        self._last_life = time.monotonic()
        if not data:
            return  # a keep-alive
        out: list[Reading] = []
        append = out.append
        norms, cells, use_source = self._normalisers, self._cells, self._use_source_time
        received = now_us()
        for notif in data:
            if isinstance(notif, ua.DataChangeNotification):
                for item in notif.MonitoredItems:
                    handle = item.ClientHandle
                    if handle >= len(norms):
                        continue
                    dv = item.Value
                    variant = dv.Value
                    raw = variant.Value if variant is not None else None
                    status = dv.StatusCode
                    quality = status.value if status is not None else 0
                    ts = (dv.SourceTimestamp or dv.ServerTimestamp) if use_source else dv.ServerTimestamp
                    sample = norms[handle].apply(raw, _to_us(ts) if ts is not None else received, quality)
                    if sample is not None:
                        append((cells[handle], sample))
            elif isinstance(notif, ua.StatusChangeNotification) and not notif.Status.is_good():
                self._queue.put_nowait(_Lost(f"subscription status {notif.Status.name}"))
        if out:
            self._queue.put_nowait(out)

    async def _connection_lost(self, err: Exception) -> None:
        self._queue.put_nowait(_Lost(f"connection lost: {opcua_session.describe(err)}"))

    async def stream(self) -> AsyncIterator[list[Reading]]:
        timeout = self.config.keepalive_timeout_s
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=max(0.1, timeout / 4))
            except TimeoutError:
                silent = time.monotonic() - self._last_life
                if silent > timeout:
                    raise ConnectionLost(
                        self.config.endpoint, f"stalled: no data or keep-alive for {silent:.1f} s"
                    ) from None
                continue
            if isinstance(item, _Lost):
                raise ConnectionLost(self.config.endpoint, item.reason)
            yield item

    async def close(self) -> None:
        client, self._client, self._subscription = self._client, None, None
        self._queue = asyncio.Queue()
        if client is None:
            return
        client.connection_lost_callback = None
        try:
            await asyncio.wait_for(client.disconnect(), timeout=2)
        except opcua_session.LIBRARY_ERRORS:
            pass  # the connection is already gone; nothing left to release on the server
        finally:
            client.disconnect_socket()


def _to_us(ts: datetime) -> int:
    if ts.tzinfo is None:  # OPC-UA DateTime is UTC by definition; asyncua may return it naive
        ts = ts.replace(tzinfo=UTC)
    return datetime_to_us(ts)


def create(config: OpcUaSource, *, mqtt_url: str, state_dir: Path) -> OpcUaAdapter:
    return OpcUaAdapter(config, state_dir=state_dir)
