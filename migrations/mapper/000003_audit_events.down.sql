DROP TABLE IF EXISTS mapper.audit_events;
DROP FUNCTION IF EXISTS mapper.audit_events_append_only();
