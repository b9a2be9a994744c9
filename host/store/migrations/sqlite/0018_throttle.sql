-- Failed client authentications per window, shared by the replicas on one
-- database: a client id at an address, and an address.
CREATE TABLE throttle_windows (
    key         TEXT PRIMARY KEY,
    started_ms  BIGINT NOT NULL,
    failures    BIGINT NOT NULL
);
