-- Token signing keys. The newest key without `retired_at` signs; retired keys
-- stay published until every token they signed has expired.

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    -- PKCS#8 PEM. The data directory is the gateway's to protect (mode 0700).
    private_pem  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT
);
