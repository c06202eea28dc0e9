-- audit_events: the append-only timeline of every referral, in plain words
-- (message) with the facts behind them (details) and the trace to open in
-- Jaeger (trace_id). Rows are never updated or deleted; a trigger enforces it.
CREATE TABLE mapper.audit_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id        bigint,
    referral_id    text        NOT NULL DEFAULT '',
    opportunity_id text        NOT NULL DEFAULT '',
    kind           text        NOT NULL,
    message        text        NOT NULL,
    details        jsonb       NOT NULL DEFAULT '{}',
    trace_id       text        NOT NULL DEFAULT '',
    at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_events_referral_idx ON mapper.audit_events (referral_id, at);
CREATE INDEX audit_events_opportunity_idx ON mapper.audit_events (opportunity_id, at) WHERE opportunity_id <> '';

CREATE FUNCTION mapper.audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mapper.audit_events is append-only';
END;
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON mapper.audit_events
    FOR EACH ROW EXECUTE FUNCTION mapper.audit_events_append_only();
