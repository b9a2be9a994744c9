-- Modules and the active policy of gateways whose state is all in the
-- database: an uploaded module is kept by its SHA-256, and every activation
-- (the policy file as deployed, an upload, a rollback) is a row whose text
-- every replica serves.
CREATE TABLE module_blobs (
    sha256      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    bytes       BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);

CREATE TABLE policy_activations (
    generation  BIGINT PRIMARY KEY,
    -- The policy's text as it serves; module files in it are relative to
    -- the policy file's directory, uploaded modules named by sha256 alone.
    policy      TEXT NOT NULL,
    -- 'file' (the policy file as deployed), 'upload' or 'rollback'.
    kind        TEXT NOT NULL,
    -- For 'file': SHA-256 of the file's text.
    file_sha256 TEXT,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL
);
