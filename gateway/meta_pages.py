"""Publishing a cell's meta retained, paged when it is larger than one message, without leaving stale pages.

A meta too large for ``MAX_MESSAGE_BYTES`` (a cell with 20,000 signals) is split by the contract
(``encode_meta_pages``) into pages retained on ``…/meta`` and ``…/meta/<k>``. When a cell's meta shrinks, the
pages it no longer fills would stay retained on the broker and repeat old definitions to every new subscriber, so
they are cleared (an empty retained message). How many pages each cell had is kept in a small JSON file in the
gateway's state directory, so a gateway restarted with a smaller config clears them too. Raises
``ConnectionLost`` (from the session) when the broker goes away mid-way; the next connection publishes again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from datafactory.config.models import PlantConfig, SignalBinding
from datafactory.contract.meanings import Meaning
from datafactory.contract.payload import SignalMeta, encode_meta_pages
from datafactory.contract.topics import CellPath
from datafactory.errors import ContractError
from gateway.mqtt_session import MqttSession

_log = logging.getLogger(__name__)


def cell_pages(
    config: PlantConfig, bindings: Iterable[SignalBinding], *, gateway: str
) -> Iterator[tuple[CellPath, list[bytes]]]:
    """Each cell's meta (its attributes and every signal of ``bindings`` on it) as the pages to retain. A cell
    whose meta the contract refuses is logged and left out; the others are still published."""
    cells = config.cell_paths()
    signals: dict[str, list[SignalMeta]] = {}
    for b in bindings:
        signals.setdefault(b.cell, []).append(
            SignalMeta(b.signal, Meaning(b.meaning), b.unit, b.description, b.declared_type())
        )
    for key, metas in signals.items():
        cell = cells[key]
        attributes = {
            "name": cell.name,
            "machine_class": cell.machine_class,
            "ideal_cycle_time_s": cell.ideal_cycle_time_s,
            "target_rate_per_hour": cell.target_rate_per_hour,
        }
        try:
            # Paged when it is larger than one message (a cell with 20,000 signals): never dropped.
            pages = encode_meta_pages(metas, gateway=gateway, attributes=attributes)
        except ContractError as err:
            _log.error("meta of cell %s cannot be published: %s", key, err.detail)
            continue
        yield CellPath(config.enterprise.id, config.site.id, *key.split("/")), pages


class MetaPages:
    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._pages: dict[str, int] | None = None  # read on first use: constructors do no I/O

    def _load(self) -> dict[str, int]:
        try:
            doc = orjson.loads(self.state_file.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as err:
            _log.warning("ignoring %s (%s): a shrunken cell's old meta pages may stay retained", self.state_file, err)
            return {}
        if not isinstance(doc, dict):
            return {}
        return {k: v for k, v in doc.items() if isinstance(v, int)}

    def publish(self, session: MqttSession, path: CellPath, pages: list[bytes]) -> None:
        """Retain ``pages`` (page 1 first) for ``path``, then clear the pages an earlier, larger meta used."""
        if self._pages is None:
            self._pages = self._load()
        before = self._pages.get(path.key, 1)
        for k, payload in enumerate(pages, 1):
            session.publish(path.meta_page_topic(k), payload, retain=True)
        for k in range(len(pages) + 1, before + 1):
            session.publish(path.meta_page_topic(k), b"", retain=True)
        if before != len(pages):
            self._pages[path.key] = len(pages)
            self._save(self._pages)

    def _save(self, pages: dict[str, int]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(orjson.dumps(pages))
            os.replace(tmp, self.state_file)
        except OSError as err:
            _log.warning("cannot record meta pages in %s: %s", self.state_file, err)
