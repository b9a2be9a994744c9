-- The access audit trail: one record per brokered FHIR request, and one per
-- entry of a batch. Append-only: the gateway never updates or deletes a row.
-- Holds ids only, never tokens or resource bodies. Portable SQL: it runs on
-- SQLite and PostgreSQL alike.

CREATE TABLE access_log (
    -- The gateway's request id (the X-Request-Id it answers with).
    request_id     TEXT NOT NULL,
    -- 0 for the HTTP request itself; 1..n for the entries of a batch.
    part           BIGINT NOT NULL,
    -- When the request arrived, milliseconds since the Unix epoch.
    at_ms          BIGINT NOT NULL,
    client_id      TEXT,
    tenant_id      TEXT,
    provider_id    TEXT,
    -- The FHIR version the client spoke: 'stu3' or 'dstu2'.
    face           TEXT NOT NULL,
    -- 'read', 'vread', 'search', 'batch', 'capabilities', 'other' or '-'.
    interaction    TEXT NOT NULL,
    resource_type  TEXT,
    patient_id     TEXT,
    -- 'success', 'client-error', 'denied', 'provider-error' or 'gateway-error'.
    outcome        TEXT NOT NULL,
    status         BIGINT NOT NULL,
    latency_us     BIGINT NOT NULL,
    PRIMARY KEY (request_id, part)
);

-- The questions the trail answers: a tenant's, a client's or a patient's
-- accesses over a time range, and everything over a time range.
CREATE INDEX access_log_by_tenant ON access_log (tenant_id, at_ms);
CREATE INDEX access_log_by_client ON access_log (client_id, at_ms);
CREATE INDEX access_log_by_patient ON access_log (patient_id, at_ms);
CREATE INDEX access_log_by_time ON access_log (at_ms);
