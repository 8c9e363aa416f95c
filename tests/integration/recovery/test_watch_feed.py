"""The watchdog's feed says a partition is read to its end only when the broker says so: a
record written after the feed's last fetch keeps the partition behind, so a busy watchdog
never judges a run on a view that lacks the run's progress."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from loopline_bus import KafkaBus
from loopline_events import CONTEXTS
from loopline_recovery.adapters.feed import WatchFeed


async def _nothing(*_: object) -> None:
    return None


async def test_a_record_written_after_the_last_fetch_keeps_its_partition_behind(
    kafka_bus: KafkaBus,
) -> None:
    feed = WatchFeed(
        kafka_bus.settings,
        "watch-feed-test",
        [CONTEXTS.name],
        on_batch=_nothing,
        on_assigned=_nothing,
        on_revoked=_nothing,
    )
    tp = TopicPartition(kafka_bus.topic(CONTEXTS.name), 0)
    await kafka_bus.publish_raw(CONTEXTS.name, b"{}", key=b"a", partition=0)
    consumer = AIOKafkaConsumer(**kafka_bus.settings.client_options())
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while await consumer.position(tp) < 1:
            await consumer.getmany(tp, timeout_ms=200)
        consumer.pause(tp)  # no more fetches: what the consumer knows of the end stays as it was
        await feed._note_fresh(consumer)
        assert 0 in feed.fresh, "read to the end: fresh"
        read_to_end_at = feed.fresh[0]

        await kafka_bus.publish_raw(CONTEXTS.name, b"{}", key=b"a", partition=0)
        await feed._note_fresh(consumer)
        assert feed.fresh[0] == read_to_end_at, "a record it has not read: not fresh again"

        consumer.resume(tp)
        while await consumer.position(tp) < 2:
            await consumer.getmany(tp, timeout_ms=200)
        await feed._note_fresh(consumer)
        assert feed.fresh[0] > read_to_end_at
    finally:
        await consumer.stop()
