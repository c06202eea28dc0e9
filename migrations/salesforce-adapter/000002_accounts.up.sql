-- Customer accounts the adapter found or created in Salesforce, keyed by the
-- normalised match key (name | country | postal code), so a referral for a
-- known customer costs no account query.
CREATE TABLE salesforce_adapter.accounts (
    match_key   text        PRIMARY KEY,
    account_id  text        NOT NULL,
    created     boolean     NOT NULL DEFAULT false,
    resolved_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_account_id_idx ON salesforce_adapter.accounts (account_id);
