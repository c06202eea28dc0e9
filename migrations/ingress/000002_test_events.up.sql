-- test_events records every validly signed test-created delivery, so an
-- operator can confirm that Partner Center reaches ingress and that
-- signatures verify: POST /webhooks/v1/registration/validationEvents, then
--   SELECT * FROM ingress.test_events ORDER BY received_at DESC LIMIT 5;
-- Each delivery attempt is a row (Partner Center retries a test event like
-- any other); msg_id groups the attempts of one event. Partner Center
-- throttles test events to 2 per minute, so the table stays small.
CREATE TABLE ingress.test_events (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at         timestamptz NOT NULL,
    msg_id              text        NOT NULL,
    event_name          text        NOT NULL,
    resource_uri        text        NOT NULL,
    resource_name       text        NOT NULL,
    audit_uri           text,
    resource_change_utc timestamptz NOT NULL,
    trace_id            text
);

CREATE INDEX test_events_received_at_idx ON ingress.test_events (received_at DESC);
