-- refresh_tokens holds the Secure Application Model refresh token of each
-- (tenant, application), sealed with AES-256-GCM under PC_TOKEN_KEY (nonce ||
-- ciphertext || tag; the additional data binds it to its row). Partner
-- Center rotates the refresh token on every redemption, so the adapter
-- redeems it inside a transaction that holds this row FOR UPDATE and writes
-- the new one before committing: two replicas never redeem the same token.
CREATE TABLE partnercenter_adapter.refresh_tokens (
    tenant_id   text        NOT NULL,
    client_id   text        NOT NULL,
    sealed      bytea       NOT NULL,
    rotations   bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, client_id)
);
