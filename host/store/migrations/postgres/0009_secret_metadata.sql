-- Secrets as people manage them: what each is for, who created it, and when
-- it (and its client) was last used, to the minute.
ALTER TABLE client_secrets ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE client_secrets ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE client_secrets ADD COLUMN last_used_at BIGINT;
ALTER TABLE clients ADD COLUMN last_used_at BIGINT;
