"""The `memory` schema in PostgreSQL: runs (their state) and every event of each run; the usage
ledger; long-term memories; each run's history, a row per message (appended, never
rewritten). The `artifacts` table of the first version is no longer written: large content
lives in the artifact store (loopline_artifacts)."""

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
    """
    CREATE TABLE {schema}.usage (
        event_id          uuid PRIMARY KEY,
        run_id            text NOT NULL,
        tenant            text NOT NULL,
        agent             text NOT NULL,
        model             text NOT NULL,
        seq               integer NOT NULL,
        prompt_tokens     bigint NOT NULL,
        completion_tokens bigint NOT NULL,
        cost_usd          numeric(20, 9) NOT NULL,
        occurred_at       timestamptz NOT NULL
    );
    CREATE INDEX usage_run_idx ON {schema}.usage (run_id);
    CREATE INDEX usage_tenant_idx ON {schema}.usage (tenant, occurred_at);
    CREATE VIEW {schema}.usage_by_run AS
        SELECT run_id, tenant, agent, count(*) AS decisions,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(prompt_tokens + completion_tokens) AS total_tokens, sum(cost_usd) AS cost_usd,
               min(occurred_at) AS first_at, max(occurred_at) AS last_at
        FROM {schema}.usage GROUP BY run_id, tenant, agent;
    CREATE VIEW {schema}.usage_by_tenant AS
        SELECT tenant, count(DISTINCT run_id) AS runs, count(*) AS decisions,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(prompt_tokens + completion_tokens) AS total_tokens, sum(cost_usd) AS cost_usd
        FROM {schema}.usage GROUP BY tenant;
    CREATE TABLE {schema}.memories (
        id         bigserial PRIMARY KEY,
        tenant     text NOT NULL,
        agent      text NOT NULL,
        kind       text NOT NULL CHECK (kind IN ('fact', 'episode')),
        run_id     text NOT NULL,
        content    text NOT NULL,
        digest     text NOT NULL,
        created_at timestamptz NOT NULL,
        tsv        tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
        UNIQUE (tenant, agent, kind, run_id, digest)
    );
    CREATE INDEX memories_search ON {schema}.memories USING gin (tsv);
    CREATE INDEX memories_scope ON {schema}.memories (tenant, agent, created_at DESC);
    CREATE TABLE {schema}.artifacts (
        ref        text PRIMARY KEY,
        run_id     text NOT NULL,
        chars      bigint NOT NULL,
        content    text NOT NULL,
        created_at timestamptz NOT NULL
    );
    """,
    """
    CREATE TABLE {schema}.messages (
        run_id  text NOT NULL,
        idx     integer NOT NULL,
        tokens  integer NOT NULL,
        message jsonb NOT NULL,
        PRIMARY KEY (run_id, idx)
    );
    """,
    # Prompt caching: of the tokens read, those served from and written to the provider's
    # cache, each priced at its own rate in cost_usd.
    """
    ALTER TABLE {schema}.usage
        ADD COLUMN cached_tokens bigint NOT NULL DEFAULT 0,
        ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;
    CREATE OR REPLACE VIEW {schema}.usage_by_run AS
        SELECT run_id, tenant, agent, count(*) AS decisions,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(prompt_tokens + completion_tokens) AS total_tokens, sum(cost_usd) AS cost_usd,
               min(occurred_at) AS first_at, max(occurred_at) AS last_at,
               sum(cached_tokens) AS cached_tokens, sum(cache_write_tokens) AS cache_write_tokens
        FROM {schema}.usage GROUP BY run_id, tenant, agent;
    CREATE OR REPLACE VIEW {schema}.usage_by_tenant AS
        SELECT tenant, count(DISTINCT run_id) AS runs, count(*) AS decisions,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(prompt_tokens + completion_tokens) AS total_tokens, sum(cost_usd) AS cost_usd,
               sum(cached_tokens) AS cached_tokens, sum(cache_write_tokens) AS cache_write_tokens
        FROM {schema}.usage GROUP BY tenant;
    """,
)
