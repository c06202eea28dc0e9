DROP TABLE IF EXISTS mapper.purges;
DROP FUNCTION IF EXISTS mapper.purges_append_only();
DROP INDEX IF EXISTS mapper.dead_letters_replayed_idx;
DROP INDEX IF EXISTS mapper.audit_events_at_idx;

CREATE OR REPLACE FUNCTION mapper.audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mapper.audit_events is append-only';
END;
$$;
