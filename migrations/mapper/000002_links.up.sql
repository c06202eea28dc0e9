-- links: one row per referral <-> opportunity pair, the mapper's memory of
-- what it has applied and written. Every message about a referral locks its
-- row (SELECT ... FOR UPDATE, or the INSERT ... ON CONFLICT DO UPDATE that
-- finds or creates it), so one referral's work is serial across replicas.
-- referral_id is nullable and opportunity_id is not unique yet because the
-- outbound direction (next) creates links from an opportunity before the
-- referral exists.
CREATE TABLE mapper.links (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    referral_id        text UNIQUE,
    engagement_id      text        NOT NULL DEFAULT '',
    opportunity_id     text        NOT NULL DEFAULT '',
    account_id         text        NOT NULL DEFAULT '',
    -- active: snapshots are applied; parked: Salesforce rejected the last
    -- write (or the mapping could not express the referral), later snapshots
    -- are recorded but held until an operator replays the link; orphaned and
    -- stopped are reserved for the outbound lifecycle.
    state              text        NOT NULL DEFAULT 'active'
                       CHECK (state IN ('active', 'parked', 'orphaned', 'stopped')),
    park_reason        text        NOT NULL DEFAULT '',
    -- The newest Partner Center snapshot accepted (applied, found to be an
    -- echo, or held): its updatedDateTime orders snapshots, its eTag is the
    -- If-Match of a later PATCH, and the snapshot itself (a marshalled
    -- cosell.v1.ReferralObserved) is what a replay re-applies.
    pc_updated_at      timestamptz,
    pc_etag            text        NOT NULL DEFAULT '',
    snapshot           bytea,
    -- What was last written to Salesforce: the projection (and its hash) is
    -- how our own echoes and no-op changes are recognised.
    sf_projection_hash text        NOT NULL DEFAULT '',
    sf_projection      jsonb,
    -- The last command sent (a marshalled UpsertOpportunityCommand) and the
    -- snapshot it came from. Until its result arrives, a redelivery of that
    -- snapshot publishes it again, which heals a crash between commit and
    -- publish (the command is idempotent: Msg-Id, inbox, External ID upsert).
    command_id         text        NOT NULL DEFAULT '',
    command            bytea,
    command_updated_at timestamptz,
    result_command_id  text        NOT NULL DEFAULT '',
    replays            integer     NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX links_engagement_idx ON mapper.links (engagement_id) WHERE engagement_id <> '';
CREATE INDEX links_opportunity_idx ON mapper.links (opportunity_id) WHERE opportunity_id <> '';
CREATE INDEX links_parked_idx ON mapper.links (updated_at) WHERE state = 'parked';
