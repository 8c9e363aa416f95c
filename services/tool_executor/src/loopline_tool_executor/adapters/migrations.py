"""The `executor` schema in PostgreSQL: the ledger of side-effecting tool calls."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {schema}.tool_calls (
        run_id      text NOT NULL,
        seq         integer NOT NULL,
        call_id     text NOT NULL,
        tool        text NOT NULL,
        started_at  timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        outcome     jsonb,
        PRIMARY KEY (run_id, seq, call_id)
    );
    """,
)
