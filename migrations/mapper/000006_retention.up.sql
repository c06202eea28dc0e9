-- Data retention (see the root README, "Data retention").
--
-- audit_events stays append-only for the services' own code, but the
-- retention job (rows older than MAPPER_AUDIT_RETENTION) and cosellctl purge
-- (one customer's rows) may delete: each sets the transaction-local setting
-- cosell.audit_delete to 'retention' or 'purge' first. Updates are still
-- always refused.
CREATE OR REPLACE FUNCTION mapper.audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('cosell.audit_delete', true) IN ('retention', 'purge') THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'mapper.audit_events is append-only';
END;
$$;

-- The retention job deletes by age in batches: it needs these.
CREATE INDEX audit_events_at_idx ON mapper.audit_events (at);
CREATE INDEX dead_letters_replayed_idx ON mapper.dead_letters (replayed_at) WHERE replayed_at IS NOT NULL;

-- purges: the proof that cosellctl purge removed a customer's data, without
-- the data: who, when, how the customer was chosen (never the name itself),
-- the ids purged and the rows removed per table. Append-only, and not
-- subject to the retention job.
CREATE TABLE mapper.purges (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    purged_at       timestamptz NOT NULL DEFAULT now(),
    purged_by       text        NOT NULL,
    selector        text        NOT NULL CHECK (selector IN ('referral', 'opportunity', 'customer-name')),
    referral_ids    text[]      NOT NULL DEFAULT '{}',
    opportunity_ids text[]      NOT NULL DEFAULT '{}',
    deleted         jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX purges_referral_ids_idx ON mapper.purges USING gin (referral_ids);

CREATE FUNCTION mapper.purges_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mapper.purges is append-only';
END;
$$;

CREATE TRIGGER purges_append_only
    BEFORE UPDATE OR DELETE ON mapper.purges
    FOR EACH ROW EXECUTE FUNCTION mapper.purges_append_only();
