-- The keys the gateway signs its client assertions with at providers that
-- authenticate it with private_key_jwt (SMART Backend Services): one or more
-- per provider, the newest signing, every key not yet retired published in
-- the provider's JWK Set.
CREATE TABLE upstream_keys (
    kid         TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    -- The PKCS#8 private key, sealed under the key-encryption key.
    sealed_key  TEXT NOT NULL,
    -- The public JWK, as published.
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- When the key leaves the JWK Set; NULL while it is current or published.
    retire_at   BIGINT
);
CREATE INDEX upstream_keys_by_provider ON upstream_keys (provider_id, created_at);
