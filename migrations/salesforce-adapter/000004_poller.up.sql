-- cursors holds the durable watermark of the opportunity poller and the
-- outcome of its last poll, for operators:
--   SELECT * FROM salesforce_adapter.cursors;
-- watermark is the newest Opportunity SystemModstamp (Salesforce's clock)
-- the poller has published; the next poll asks for SystemModstamp at or
-- after watermark minus the overlap. It only ever moves forward.
CREATE TABLE salesforce_adapter.cursors (
    name             text        PRIMARY KEY,
    watermark        timestamptz,
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_outcome     text        NOT NULL DEFAULT '',
    last_error       text        NOT NULL DEFAULT '',
    last_seen        integer     NOT NULL DEFAULT 0,
    last_published   integer     NOT NULL DEFAULT 0,
    last_pages       integer     NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- observed remembers the (opportunity, SystemModstamp) versions already
-- published, so the overlap window never publishes one twice, also across
-- restarts. Rows older than the overlap below the watermark can never be
-- returned by a poll again and are pruned.
CREATE TABLE salesforce_adapter.observed (
    opportunity_id  text        NOT NULL,
    system_modstamp timestamptz NOT NULL,
    published_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (opportunity_id, system_modstamp)
);
CREATE INDEX observed_system_modstamp_idx ON salesforce_adapter.observed (system_modstamp);
