-- Credentials of providers registered through the admin API or CLI, for
-- gateways whose state is all in the database: sealed under the
-- key-encryption key, by the name a declaration's credential file gives.
CREATE TABLE provider_secrets (
    name        TEXT PRIMARY KEY,
    sealed      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
