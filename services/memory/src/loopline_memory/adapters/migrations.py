"""The `memory` schema in PostgreSQL: runs (their state) and every event of each run."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {schema}.runs (
        run_id            text PRIMARY KEY,
        tenant            text NOT NULL,
        agent             text NOT NULL,
        goal              text NOT NULL,
        status            text NOT NULL,
        reason            text,
        answer            text,
        steps             integer NOT NULL,
        prompt_tokens     bigint NOT NULL DEFAULT 0,
        completion_tokens bigint NOT NULL DEFAULT 0,
        state             jsonb NOT NULL,
        outbox            jsonb NOT NULL DEFAULT '[]',
        started_at        timestamptz NOT NULL,
        updated_at        timestamptz NOT NULL
    );
    CREATE INDEX runs_by_tenant ON {schema}.runs (tenant, started_at DESC);
    CREATE INDEX runs_by_start ON {schema}.runs (started_at DESC);
    CREATE TABLE {schema}.events (
        event_id     uuid PRIMARY KEY,
        run_id       text NOT NULL,
        seq          integer NOT NULL,
        type         text NOT NULL,
        topic        text NOT NULL,
        producer     text NOT NULL,
        occurred_at  timestamptz NOT NULL,
        payload      jsonb NOT NULL
    );
    CREATE INDEX events_by_run ON {schema}.events (run_id, occurred_at);
    """,
)
