"""Dead letters under attack and under failure (issue 15): bounded rows, one row per distinct dead letter with a
delivery count, every decoder failure a dead letter with one log line per kind and a count, and a dead-letter
table that refuses writes stopping consumption without losing a message."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from datafactory.contract.payload import MAX_MESSAGE_BYTES, MAX_PACKET_BYTES, encode_batch
from datafactory.contract.sample import Sample, now_us
from datafactory.contract.topics import TopicKind
from datafactory.db.connect import with_database
from datafactory.db.rls import provision
from ingest.dead_letters import DEAD_LETTER_PREFIX_BYTES
from tests.conftest import PG_SERVER
from tests.support.ingest_process import IngestProcess
from tests.test_ingest_support import (
    Publisher,
    cell,
    count,
    expected,
    make_samples,
    publish_samples,
    start_worker,
    stored_samples,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_a_dead_letter_is_bounded_and_redeliveries_count_instead_of_adding_rows(
    db_url: str, mqtt_url: str, enterprise: str
) -> None:
    path = cell(enterprise)
    data = path.topic(TopicKind.DATA)
    # Just over the contract's limit (the broker at 1883 forwards it: its packet limit is Mosquitto's default).
    oversized = b'{"fmt":"df-json/2","samples":[' + b" " * MAX_MESSAGE_BYTES + b"]}"
    garbage = b"{not json"
    bad_sample = encode_batch([Sample("p", now_us(), 1.0, 0), Sample("bad name!", now_us(), 2.0, 0)], gateway="g")
    worker = start_worker(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        for _ in range(5):
            pub.publish(data, oversized)
            pub.publish(data, garbage)
        for _ in range(2):
            pub.publish(data, bad_sample)
        pub.flush(60)
        wait_until(lambda: count(db_url, "SELECT coalesce(sum(deliveries), 0) FROM dead_letters") == 12, 60,
                   "every delivery counted")  # fmt: skip
        time.sleep(1.0)  # the next health row
    finally:
        pub.close()
        worker.stop()
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT reason, length(payload), payload_size, payload_sha256, deliveries, sample_index, payload"
            " FROM dead_letters ORDER BY reason"
        ).fetchall()
        health = conn.execute(
            "SELECT dead_letters_by_reason, refused_messages_total, rejected_samples_total, duplicates_total,"
            " samples_total FROM ingest_health"
        ).fetchone()
    assert [(r[0], r[4]) for r in rows] == [("bad_signal_name", 2), ("malformed_json", 5), ("oversized", 5)]
    (_, kept, size, digest, _, _, prefix) = rows[2]
    assert kept == DEAD_LETTER_PREFIX_BYTES and size == len(oversized)
    assert bytes(digest) == hashlib.sha256(oversized).digest() and bytes(prefix) == oversized[:kept]
    assert rows[0][5] == 1 and rows[1][1] == rows[1][2] == len(garbage)
    assert health == ({"oversized": 5, "malformed_json": 5, "bad_signal_name": 2}, 10, 2, 1, 1)


@pytest.fixture
def ingest_login(db_url: str) -> Iterator[str]:
    """A login role of the ingest group ``df_ingest`` (``db roles`` grants), as a production worker connects.

    BYPASSRLS because on plain PostgreSQL ``db roles`` puts row-level security on ``samples``, and PostgreSQL
    refuses COPY FROM into a table whose RLS applies to the user (on TimescaleDB, samples is served to plants
    through views instead and has no RLS); the privileges still come from df_ingest alone."""
    name = f"dft_ingest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url) as conn:
        provision(conn, actor="test")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS IN ROLE df_ingest").format(sql.Identifier(name)))
        conn.commit()
    yield name
    with psycopg.connect(with_database(PG_SERVER, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


# How the dead-letter table is made to refuse writes, how it is repaired, the exit code and what the line names.
REFUSALS = {
    "check constraint": (
        "ALTER TABLE dead_letters ADD CONSTRAINT refuse_all CHECK (false) NOT VALID",
        "ALTER TABLE dead_letters DROP CONSTRAINT refuse_all", 1, "refuse_all",
    ),
    "trigger": (
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE 'no dead letters today'; END $$;"
        " CREATE TRIGGER refuse BEFORE INSERT ON dead_letters FOR EACH ROW EXECUTE FUNCTION refuse()",
        "DROP TRIGGER refuse ON dead_letters", 1, "no dead letters today",
    ),
    "revoked privilege": (
        "REVOKE INSERT ON dead_letters FROM df_ingest", "GRANT INSERT ON dead_letters TO df_ingest", 5,
        "permission denied for table dead_letters",
    ),
}  # fmt: skip


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_a_dead_letter_table_that_refuses_writes_stops_ingest_without_loss(
    request: pytest.FixtureRequest, db_url: str, mqtt_url: str, enterprise: str, refusal: str
) -> None:
    attack, repair, exit_code, named = REFUSALS[refusal]
    url = db_url
    if refusal == "revoked privilege":  # a superuser ignores privileges: connect as the ingest role does
        url = db_url.replace("postgres@", f"{request.getfixturevalue('ingest_login')}@", 1)
        assert url != db_url
    with psycopg.connect(db_url) as conn:  # the attack: nothing may be written to dead_letters any more
        conn.execute(attack)
    path = cell(enterprise)
    good = make_samples(["power", "speed"], 600)  # 1200 samples in 24 messages
    bad = [b"{broken %d" % i for i in range(3)]
    proc = IngestProcess(url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        proc.wait_running()
        publish_samples(pub, path, good[:600], per_message=50)
        for payload in bad:
            pub.publish(path.topic(TopicKind.DATA), payload)
        publish_samples(pub, path, good[600:], per_message=50)
        pub.flush(60)
        code, err = proc.wait_exit(60)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == exit_code, err
        assert "Traceback" not in err
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and named in errors[0], err
        if exit_code == 1:  # a permission problem is described as such by the CLI's one error boundary (exit 5)
            assert "refuses dead letters" in errors[0] and "broker keeps the backlog" in errors[0], err
        assert count(db_url, "SELECT count(*) FROM dead_letters") == 0
        assert count(db_url, "SELECT count(*) FROM ingest_health WHERE strpos(stopped_reason, 'dead letters') > 0") == 1

        with psycopg.connect(db_url) as conn:  # the repair; the broker kept everything not acknowledged
            conn.execute(repair)
        proc = IngestProcess(url, mqtt_url, enterprise)
        proc.wait_running()
        wait_until(lambda: count(db_url, "SELECT count(*) FROM samples") >= len(good), 90, "every sample stored")
        wait_until(lambda: count(db_url, "SELECT count(*) FROM dead_letters") >= len(bad), 30, "every dead letter")
        time.sleep(1.5)  # a second delivery would show as an extra row or a count of 2
    finally:
        pub.close()
        code, err = proc.terminate()
    assert code == 0, err
    assert stored_samples(db_url) == expected(good)
    with psycopg.connect(db_url) as conn:
        letters = conn.execute("SELECT payload, deliveries FROM dead_letters ORDER BY payload").fetchall()
    assert [(bytes(p), n) for p, n in letters] == [(b, 1) for b in sorted(bad)]


def test_deep_nesting_and_repeated_errors_are_one_dead_letter_each_and_logged_once_with_a_count(
    db_url: str, mqtt_url: str, enterprise: str
) -> None:
    path = cell(enterprise)
    deep = b'{"fmt":"df-json/2","samples":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep_meta = b'{"fmt":"df-meta/1","signals":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    proc = IngestProcess(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        proc.wait_running()
        for _ in range(40):
            pub.publish(path.topic(TopicKind.DATA), deep)
        pub.publish(path.topic(TopicKind.META), deep_meta)
        for i in range(300):  # another reason, many distinct messages: still one line and one count
            pub.publish(path.topic(TopicKind.DATA), b"{garbage %d" % i)
        pub.flush(60)
        wait_until(lambda: count(db_url, "SELECT coalesce(sum(deliveries), 0) FROM dead_letters") == 341, 90,
                   "every dead letter")  # fmt: skip
    finally:
        pub.close()
        code, log = proc.terminate()
    assert code == 0, log
    assert "Traceback" not in log and "RecursionError" not in log
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT reason, count(*), sum(deliveries) FROM dead_letters GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [("malformed_json", 300, 300), ("too_deep", 2, 41)]
    lines = log.splitlines()
    firsts = [line for line in lines if "dead letter too_deep on" in line]
    assert len(firsts) == 1 and "WARNING" in firsts[0]
    assert len([line for line in lines if "dead letter malformed_json on" in line]) == 1
    counts = [line for line in lines if "dead letters malformed_json (×" in line]
    assert len(counts) == 1 and "(×300 in the last" in counts[0], log
    assert len([line for line in lines if "dead letters too_deep (×41 in the last" in line]) == 1, log
    assert len(lines) < 20, log


def test_ingest_announces_the_packet_limit_so_the_broker_keeps_huge_messages_away(
    db_url: str, mqtt_url: str, enterprise: str
) -> None:
    """The broker at 1883 forwards any size (Mosquitto's default limit is 256 MB): only the Maximum Packet Size
    ingest announces keeps a 3 MiB message out of its memory. A message just over the payload limit still fits the
    packet limit and is dead-lettered, so the test also shows that large messages do reach ingest."""
    path = cell(enterprise)
    huge = b'{"fmt":"df-json/2","samples":[' + b" " * (3 * MAX_MESSAGE_BYTES) + b"]}"
    over = b'{"fmt":"df-json/2","samples":[' + b" " * MAX_MESSAGE_BYTES + b"]}"
    assert len(over) <= MAX_PACKET_BYTES - 1024 < len(huge)
    after = [Sample("p", now_us(), 4.5, 0)]
    worker = start_worker(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        pub.publish(path.topic(TopicKind.DATA), huge)
        pub.publish(path.topic(TopicKind.DATA), over)
        pub.publish(path.topic(TopicKind.DATA), encode_batch(after))
        pub.flush(60)
        wait_until(lambda: count(db_url, "SELECT count(*) FROM samples") == 1, 30, "the message after them")
        time.sleep(1.0)
    finally:
        pub.close()
        worker.stop()
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT reason, payload_size FROM dead_letters").fetchall()
    assert rows == [("oversized", len(over))]
    assert stored_samples(db_url) == expected(after)


def test_a_message_the_database_refuses_is_kept_whole_and_replays(db_url: str, mqtt_url: str, enterprise: str) -> None:
    """Valid data the database refuses (here a trigger on samples) is dead-lettered as rejected_by_database with the
    whole payload — it is what an operator replays once the cause is fixed, as docs/operators.md shows."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "CREATE FUNCTION no_samples() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE 'samples are closed'; END"
            " $$; CREATE TRIGGER no_samples BEFORE INSERT ON samples FOR EACH ROW EXECUTE FUNCTION no_samples()"
        )
    path = cell(enterprise)
    samples = make_samples(["power", "speed"], 200)  # two messages of 200 samples, each over 4 KiB
    worker = start_worker(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        publish_samples(pub, path, samples, per_message=200)
        pub.flush(30)
        wait_until(lambda: count(db_url, "SELECT count(*) FROM dead_letters WHERE reason = 'rejected_by_database'")
                   == 2, 60, "both messages dead-lettered")  # fmt: skip
        with psycopg.connect(db_url) as conn:
            letters = conn.execute("SELECT topic, payload, payload_size, detail FROM dead_letters").fetchall()
            conn.execute("DROP TRIGGER no_samples ON samples")
        kept = [(len(p), "samples are closed" in d) for _, p, _, d in letters]
        assert kept == [(size, True) for *_, size, _ in letters]
        assert min(size for *_, size, _ in letters) > DEAD_LETTER_PREFIX_BYTES
        for topic, payload, _, _ in letters:  # the replay
            pub.publish(topic, bytes(payload))
        pub.flush(30)
        wait_until(lambda: count(db_url, "SELECT count(*) FROM samples") == len(samples), 30, "replayed samples")
    finally:
        pub.close()
        worker.stop()
    assert stored_samples(db_url) == expected(samples)
