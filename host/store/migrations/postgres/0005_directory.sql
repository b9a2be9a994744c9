-- The tenant directory: providers, and which provider serves which tenant.
-- A mapping routes only once it is active (approved); every change to either
-- table is recorded in audit_events with who made it and when.

CREATE TABLE providers (
    provider_id TEXT PRIMARY KEY,
    base_url    TEXT NOT NULL,
    -- JSON: the provider as declared (version, timeouts, CA file, upstream
    -- credentials by file reference only, breaker and retry settings).
    spec        TEXT NOT NULL,
    -- 'policy' (declared in the partner's policy file) or 'admin'.
    source      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE tenant_mappings (
    tenant_id    TEXT NOT NULL,
    provider_id  TEXT NOT NULL REFERENCES providers (provider_id),
    -- 'pending', 'active' or 'rejected'.
    state        TEXT NOT NULL,
    approver     TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    decided_by   TEXT,
    decided_at   BIGINT,
    note         TEXT,
    source       TEXT NOT NULL,
    -- SHA-256 of the provider's declaration the request was made for: an
    -- approval applies to exactly what was reviewed.
    spec_sha256  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, provider_id)
);

-- Bumped on every directory change, so every gateway sharing the store
-- notices and reloads.
CREATE TABLE directory_generation (
    id          BIGINT PRIMARY KEY,
    generation  BIGINT NOT NULL
);

INSERT INTO directory_generation (id, generation) VALUES (1, 0);
