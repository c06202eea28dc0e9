-- inbox: message ids already handled, per consumer, written in the same
-- transaction as their effects (libs/store MarkProcessed; shape from
-- store.InboxDDL).
CREATE TABLE IF NOT EXISTS mapper.inbox (
    consumer     text        NOT NULL,
    msg_id       text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, msg_id)
);
CREATE INDEX IF NOT EXISTS inbox_processed_at_idx ON mapper.inbox (processed_at);

-- dead_letters: the shape of libs/bus DeadLettersTableSQL (the bus's
-- PgDeadLetterSink writes poison messages here; the mapper's pool sets
-- search_path=mapper), plus referral_id: the mapper also parks a referral's
-- sync here when Salesforce rejects it, with the reason and the last
-- snapshot as payload, and marks the row replayed when an operator replays
-- the link.
CREATE TABLE mapper.dead_letters (
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
    referral_id text,
    UNIQUE (stream, stream_seq, consumer)
);
CREATE INDEX dead_letters_pending_idx ON mapper.dead_letters (failed_at) WHERE replayed_at IS NULL;
CREATE INDEX dead_letters_referral_idx ON mapper.dead_letters (referral_id) WHERE referral_id IS NOT NULL AND replayed_at IS NULL;
