-- cursors holds the durable watermark of the reconciliation sweep (and the
-- outcome of the last run of each loop, for operators):
--   SELECT * FROM partnercenter_adapter.cursors;
-- watermark is the newest referral updatedDateTime the sweep has published;
-- the next sweep pages (updatedDateTime desc) down to watermark minus the
-- configured overlap. It only ever moves forward.
CREATE TABLE partnercenter_adapter.cursors (
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

-- missing_referrals records notifications whose referral Partner Center
-- answered 404 for: the notification is dropped (redelivery cannot fix it),
-- but not silently.
CREATE TABLE partnercenter_adapter.missing_referrals (
    referral_id text        NOT NULL,
    event_name  text        NOT NULL,
    msg_id      text        NOT NULL,
    trace_id    text        NOT NULL DEFAULT '',
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (referral_id, msg_id)
);
CREATE INDEX missing_referrals_seen_at_idx ON partnercenter_adapter.missing_referrals (seen_at DESC);
