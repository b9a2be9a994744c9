-- Test and production. A client registration has a client id in each
-- (sharing a registration id); a tenant has organizations (hospitals), and a
-- mapping names the organization and the environment its URL serves, with
-- the live provider check run when it was approved.
ALTER TABLE clients ADD COLUMN environment TEXT NOT NULL DEFAULT 'production';
ALTER TABLE clients ADD COLUMN registration_id TEXT;

CREATE TABLE organizations (
    tenant_id       TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    name            TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, organization_id)
);

ALTER TABLE tenant_mappings ADD COLUMN organization TEXT NOT NULL DEFAULT '';
ALTER TABLE tenant_mappings ADD COLUMN environment TEXT NOT NULL DEFAULT 'production';
-- JSON: the live provider check's report at approval.
ALTER TABLE tenant_mappings ADD COLUMN check_report TEXT;
