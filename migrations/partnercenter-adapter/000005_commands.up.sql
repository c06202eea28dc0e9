-- commands is the idempotency record of the PartnerCenterCommands the adapter
-- executed (cmd.partnercenter.v1), one row per command_id:
--   SELECT command_id, kind, opportunity_id, referral_id, outcome, created, error_code, completed_at
--     FROM partnercenter_adapter.commands ORDER BY received_at DESC LIMIT 20;
-- A row with completed_at set is final: a redelivered command is answered
-- from result (the PartnerCenterResult published, protobuf) without calling
-- Partner Center. outcome FAILED is never final (completed_at stays null),
-- so a replayed command is executed again. post_attempts counts the create
-- POSTs this command sent (each recorded before it is sent): a later lookup
-- that finds the referral knows the command created it even when the POST's
-- answer was lost.
CREATE TABLE partnercenter_adapter.commands (
    command_id            text        PRIMARY KEY,
    kind                  text        NOT NULL CHECK (kind IN ('create', 'patch')),
    opportunity_id        text        NOT NULL DEFAULT '',
    external_reference_id text        NOT NULL DEFAULT '',
    referral_id           text        NOT NULL DEFAULT '',
    post_attempts         integer     NOT NULL DEFAULT 0,
    first_post_at         timestamptz,
    outcome               text        NOT NULL DEFAULT '' CHECK (outcome IN ('', 'OK', 'REJECTED', 'FAILED')),
    created               boolean     NOT NULL DEFAULT false,
    http_status           integer     NOT NULL DEFAULT 0,
    error_code            text        NOT NULL DEFAULT '',
    error_message         text        NOT NULL DEFAULT '',
    result                bytea,
    trace_id              text        NOT NULL DEFAULT '',
    received_at           timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz,
    CHECK ((completed_at IS NULL) = (result IS NULL))
);
CREATE INDEX commands_external_reference_idx ON partnercenter_adapter.commands (external_reference_id) WHERE kind = 'create';
CREATE INDEX commands_received_at_idx ON partnercenter_adapter.commands (received_at);
