-- The secret-hash and cursor keys of a gateway whose state is all in the
-- database (`database_url`): sealed under the key-encryption key every
-- replica is given, so no replica needs a file but its KEK.
CREATE TABLE sealed_keys (
    name    TEXT PRIMARY KEY NOT NULL,
    sealed  TEXT NOT NULL
);
