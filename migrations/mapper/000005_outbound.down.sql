DROP INDEX IF EXISTS mapper.audit_events_seller_idx;
ALTER TABLE mapper.audit_events DROP COLUMN IF EXISTS seller;
DROP INDEX IF EXISTS mapper.links_opportunity_key;
CREATE INDEX IF NOT EXISTS links_opportunity_idx ON mapper.links (opportunity_id) WHERE opportunity_id <> '';
DELETE FROM mapper.links WHERE state = 'invalid' OR referral_id IS NULL;
ALTER TABLE mapper.links DROP CONSTRAINT links_state_check;
ALTER TABLE mapper.links ADD CONSTRAINT links_state_check
    CHECK (state IN ('active', 'parked', 'orphaned', 'stopped'));
ALTER TABLE mapper.links
    DROP COLUMN IF EXISTS origin,
    DROP COLUMN IF EXISTS sf_modstamp,
    DROP COLUMN IF EXISTS sf_record,
    DROP COLUMN IF EXISTS sync,
    DROP COLUMN IF EXISTS command_subject,
    DROP COLUMN IF EXISTS pc_command_id,
    DROP COLUMN IF EXISTS pc_command,
    DROP COLUMN IF EXISTS pc_result_command_id,
    DROP COLUMN IF EXISTS pc_rejected_command_id,
    DROP COLUMN IF EXISTS create_attempt,
    DROP COLUMN IF EXISTS invalid_hash,
    DROP COLUMN IF EXISTS related_referral_id,
    DROP COLUMN IF EXISTS related_updated_at;
