-- The outbound direction (Salesforce -> Partner Center) and the two-way
-- sync. A link now starts either from a referral (origin inbound) or from
-- an opted-in opportunity (origin outbound, referral_id NULL until Partner
-- Center answers the create), so an opportunity has at most one link.
ALTER TABLE mapper.links
    ADD COLUMN origin text NOT NULL DEFAULT 'inbound' CHECK (origin IN ('inbound', 'outbound')),
    -- The newest accepted opportunity observation: its SystemModstamp orders
    -- observations, the record is what a re-decision (after a 412) reads.
    ADD COLUMN sf_modstamp timestamptz,
    ADD COLUMN sf_record jsonb,
    -- The two-way state (internal/twoway): per synced Salesforce field the
    -- agreed value with its source time and side, what each side was last
    -- seen holding, and the writes sent to each side not yet seen back.
    ADD COLUMN sync jsonb NOT NULL DEFAULT '{}',
    -- Which subject the last Salesforce command (command_id/command) went
    -- to: the inbound upsert or the write-back by Id.
    ADD COLUMN command_subject text NOT NULL DEFAULT '',
    -- The last Partner Center command (a marshalled PartnerCenterCommand)
    -- and the last whose result arrived: one is outstanding at a time per
    -- link, and a redelivered observation republishes it (the create's id
    -- is stable, so the adapter and the broker drop repeats).
    ADD COLUMN pc_command_id text NOT NULL DEFAULT '',
    ADD COLUMN pc_command bytea,
    ADD COLUMN pc_result_command_id text NOT NULL DEFAULT '',
    -- A patch Partner Center refused is not sent again unchanged.
    ADD COLUMN pc_rejected_command_id text NOT NULL DEFAULT '',
    -- Creates are numbered: a new attempt after a refusal gets a new id.
    ADD COLUMN create_attempt integer NOT NULL DEFAULT 0,
    -- What the last failed validation said (hash), so the same failure is
    -- written to the opportunity once, not on every observation.
    ADD COLUMN invalid_hash text NOT NULL DEFAULT '',
    -- Microsoft's referral of the engagement (related-referral-* events).
    ADD COLUMN related_referral_id text NOT NULL DEFAULT '',
    ADD COLUMN related_updated_at timestamptz;

-- invalid: an opted-in opportunity failed validation, nothing was sent;
-- stopped: the seller unticked Sync with Partner Center; orphaned: the
-- opportunity was deleted (the referral is never deleted).
ALTER TABLE mapper.links DROP CONSTRAINT links_state_check;
ALTER TABLE mapper.links ADD CONSTRAINT links_state_check
    CHECK (state IN ('active', 'parked', 'orphaned', 'stopped', 'invalid'));

DROP INDEX mapper.links_opportunity_idx;
CREATE UNIQUE INDEX links_opportunity_key ON mapper.links (opportunity_id) WHERE opportunity_id <> '';

-- Entries a seller should read: they make up the opportunity's Audit field,
-- newest first.
ALTER TABLE mapper.audit_events ADD COLUMN seller boolean NOT NULL DEFAULT false;
CREATE INDEX audit_events_seller_idx ON mapper.audit_events (opportunity_id, at) WHERE seller AND opportunity_id <> '';
