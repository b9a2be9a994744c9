-- One-time invitations: a link that lets one person choose their password,
-- enroll a second factor and become a user with the roles the inviter chose.
CREATE TABLE invitations (
    -- Lower-case hex HMAC-SHA256 of the invitation token under the pepper.
    hash        TEXT PRIMARY KEY,
    username    TEXT NOT NULL,
    -- JSON array of role strings ("operator", "approver:<tenant>", ...).
    roles       TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    -- Set when accepted or withdrawn; an invitation works once.
    used_at     BIGINT
);
CREATE INDEX invitations_by_username ON invitations (username);
