-- Messages the adapter's consumers gave up on, with the reason, so that
-- operators can list and replay them (the shape of libs/bus
-- DeadLettersTableSQL, in this service's schema).
CREATE TABLE salesforce_adapter.dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service     text        NOT NULL,
    consumer    text        NOT NULL,
    stream      text        NOT NULL,
    stream_seq  bigint      NOT NULL,
    subject     text        NOT NULL,
    msg_id      text        NOT NULL DEFAULT '',
    deliveries  integer     NOT NULL,
    reason      text        NOT NULL,
    permanent   boolean     NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}',
    payload     bytea       NOT NULL,
    trace_id    text        NOT NULL DEFAULT '',
    failed_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    UNIQUE (stream, stream_seq, consumer)
);
CREATE INDEX dead_letters_pending_idx ON salesforce_adapter.dead_letters (failed_at) WHERE replayed_at IS NULL;
