"""The `recovery` schema in PostgreSQL: every dead letter, accounted for."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {schema}.dead_letters (
        event_id        uuid PRIMARY KEY,
        run_id          text NOT NULL,
        source_topic    text NOT NULL,
        source_partition integer NOT NULL,
        source_offset   bigint NOT NULL,
        consumer_group  text NOT NULL,
        kind            text NOT NULL,
        error           text NOT NULL,
        event_type      text,
        attempts        integer NOT NULL,
        original_key    bytea,
        original_value  bytea NOT NULL,
        original_headers jsonb NOT NULL,
        status          text NOT NULL DEFAULT 'parked',
        occurred_at     timestamptz NOT NULL,
        recorded_at     timestamptz NOT NULL DEFAULT now(),
        UNIQUE (source_topic, source_partition, source_offset, consumer_group)
    );
    CREATE INDEX dead_letters_by_run ON {schema}.dead_letters (run_id);
    CREATE INDEX dead_letters_by_time ON {schema}.dead_letters (occurred_at DESC);
    """,
    """
    ALTER TABLE {schema}.dead_letters
        ADD COLUMN category text,
        ADD COLUMN retries integer NOT NULL DEFAULT 0,
        ADD COLUMN redriven_at timestamptz;
    CREATE TABLE {schema}.failed_runs (
        run_id      text PRIMARY KEY,
        reason      text NOT NULL,
        cause       uuid NOT NULL,
        failed_at   timestamptz NOT NULL DEFAULT now()
    );
    """,
)
