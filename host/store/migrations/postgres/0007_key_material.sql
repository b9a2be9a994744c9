-- What the key material kept beside the database must match: the id of the
-- key-encryption key its secrets are sealed under, and check values of the
-- secret-hash and cursor keys. A gateway started on a database without the
-- keys that go with it says so at once, instead of refusing secrets.
CREATE TABLE key_material (
    name TEXT PRIMARY KEY NOT NULL,
    check_value TEXT NOT NULL
);
