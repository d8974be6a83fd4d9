"""Subscriptions and plant filtering derived from the ingest options (no network)."""

from __future__ import annotations

import pytest

from datafactory.errors import ConfigError
from ingest.options import IngestOptions


def test_plain_subscription_is_the_filter() -> None:
    assert IngestOptions(topic_filter="df/v1/acme/#").subscriptions() == ["df/v1/acme/#"]


def test_shared_subscription_adds_direct_meta_and_gateway_filters() -> None:
    subs = IngestOptions(topic_filter="df/v1/#", share_group="ingest").subscriptions()
    assert subs == [
        "$share/ingest/df/v1/#", "df/v1/+/+/+/+/+/meta", "df/v1/+/+/+/+/+/meta/+", "df/v1/+/+/_gw/+/+"
    ]  # fmt: skip
    subs = IngestOptions(topic_filter="df/v1/acme/site-1/#", share_group="g").subscriptions()
    assert subs == [
        "$share/g/df/v1/acme/site-1/#", "df/v1/acme/site-1/+/+/+/meta", "df/v1/acme/site-1/+/+/+/meta/+",
        "df/v1/acme/site-1/_gw/+/+",
    ]  # fmt: skip


def test_allowed_plants_by_enterprise_or_site() -> None:
    options = IngestOptions(allowed_plants=frozenset({"acme", "beta/site-2"}))
    assert options.plant_allowed("acme", "anything")
    assert options.plant_allowed("beta", "site-2")
    assert not options.plant_allowed("beta", "site-1")
    assert not options.plant_allowed("gamma", "site-2")
    assert IngestOptions().plant_allowed("gamma", "site-2")


def test_writer_lanes_are_bounded() -> None:
    assert IngestOptions().writers == 2
    for bad in (0, 9):
        with pytest.raises(ConfigError, match="writers"):
            IngestOptions(writers=bad)
