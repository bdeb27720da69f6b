-- Enrollment schema for SQLite (modernc.org/sqlite).
--
-- The same tables and columns as the MySQL schema. Times are DATETIME
-- columns holding fixed-width UTC text ("2006-01-02 15:04:05.000000"), so
-- that comparing them as strings compares them as times. Optional text
-- columns are NOT NULL DEFAULT ''; only foreign keys that must be able to
-- point nowhere are nullable. Status and event type are not constrained
-- here (the application checks them): SQLite cannot alter a CHECK without
-- rebuilding the table.

CREATE TABLE vma_enrollments (
    id                TEXT     NOT NULL PRIMARY KEY,
    pairing_code_hash TEXT     NOT NULL,
    vma_public_key    TEXT     NOT NULL,
    vma_name          TEXT     NOT NULL DEFAULT '',
    vma_version       TEXT     NOT NULL DEFAULT '',
    vma_fingerprint   TEXT     NOT NULL DEFAULT '',
    vma_ip_address    TEXT     NOT NULL DEFAULT '',
    vma_user_agent    TEXT     NOT NULL DEFAULT '',
    challenge_nonce   TEXT     NOT NULL DEFAULT '',
    poll_token_hash   TEXT     NOT NULL DEFAULT '',
    status            TEXT     NOT NULL,
    approved_by       TEXT     NOT NULL DEFAULT '',
    approved_at       DATETIME NULL,
    approval_notes    TEXT     NOT NULL DEFAULT '',
    rejected_by       TEXT     NOT NULL DEFAULT '',
    rejected_at       DATETIME NULL,
    rejection_reason  TEXT     NOT NULL DEFAULT '',
    revoked_by        TEXT     NOT NULL DEFAULT '',
    revoked_at        DATETIME NULL,
    revocation_reason TEXT     NOT NULL DEFAULT '',
    verified_at       DATETIME NULL,
    tunnel_port       INTEGER  NULL,
    expires_at        DATETIME NULL,
    created_at        DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL,
    CONSTRAINT uq_vma_enrollments_pairing_code_hash UNIQUE (pairing_code_hash),
    CONSTRAINT uq_vma_enrollments_tunnel_port UNIQUE (tunnel_port)
);
CREATE INDEX idx_vma_enrollments_status ON vma_enrollments (status);
CREATE INDEX idx_vma_enrollments_expires_at ON vma_enrollments (expires_at);
CREATE INDEX idx_vma_enrollments_created_at ON vma_enrollments (created_at);
CREATE INDEX idx_vma_enrollments_approved_by ON vma_enrollments (approved_by);
CREATE INDEX idx_vma_enrollments_vma_name ON vma_enrollments (vma_name);
CREATE INDEX idx_vma_enrollments_vma_fingerprint ON vma_enrollments (vma_fingerprint);

CREATE TABLE vma_pairing_codes (
    id                    TEXT     NOT NULL PRIMARY KEY,
    pairing_code_hash     TEXT     NOT NULL,
    code_hint             TEXT     NOT NULL DEFAULT '',
    generated_by          TEXT     NOT NULL DEFAULT '',
    note                  TEXT     NOT NULL DEFAULT '',
    used_by_enrollment_id TEXT     NULL
        CONSTRAINT fk_vma_pairing_codes_enrollment REFERENCES vma_enrollments (id) ON DELETE SET NULL,
    expires_at            DATETIME NOT NULL,
    used_at               DATETIME NULL,
    created_at            DATETIME NOT NULL,
    CONSTRAINT uq_vma_pairing_codes_pairing_code_hash UNIQUE (pairing_code_hash)
);
CREATE INDEX idx_vma_pairing_codes_expires_at ON vma_pairing_codes (expires_at);
CREATE INDEX idx_vma_pairing_codes_used_by ON vma_pairing_codes (used_by_enrollment_id);

CREATE TABLE vma_active_connections (
    id                TEXT     NOT NULL PRIMARY KEY,
    enrollment_id     TEXT     NOT NULL
        CONSTRAINT fk_vma_active_connections_enrollment REFERENCES vma_enrollments (id) ON DELETE CASCADE,
    vma_name          TEXT     NOT NULL DEFAULT '',
    vma_fingerprint   TEXT     NOT NULL DEFAULT '',
    ssh_user          TEXT     NOT NULL DEFAULT 'vma_tunnel',
    connection_status TEXT     NOT NULL DEFAULT 'disconnected',
    tunnel_port       INTEGER  NULL,
    remote_addr       TEXT     NOT NULL DEFAULT '',
    last_seen_at      DATETIME NULL,
    connected_at      DATETIME NULL,
    revoked_at        DATETIME NULL,
    revoked_by        TEXT     NOT NULL DEFAULT '',
    created_at        DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL,
    CONSTRAINT uq_vma_active_connections_enrollment_id UNIQUE (enrollment_id)
);
CREATE INDEX idx_vma_active_connections_status ON vma_active_connections (connection_status);
CREATE INDEX idx_vma_active_connections_vma_name ON vma_active_connections (vma_name);

-- The audit trail. id is assigned by the application (the chain head plus
-- one, under the database's write lock).
CREATE TABLE vma_connection_audit (
    id              INTEGER  NOT NULL PRIMARY KEY,
    enrollment_id   TEXT     NULL
        CONSTRAINT fk_vma_connection_audit_enrollment REFERENCES vma_enrollments (id) ON DELETE CASCADE,
    event_type      TEXT     NOT NULL,
    vma_name        TEXT     NOT NULL DEFAULT '',
    vma_fingerprint TEXT     NOT NULL DEFAULT '',
    source_ip       TEXT     NOT NULL DEFAULT '',
    user_agent      TEXT     NOT NULL DEFAULT '',
    approved_by     TEXT     NOT NULL DEFAULT '',
    event_details   TEXT     NOT NULL
        CONSTRAINT ck_vma_connection_audit_event_details CHECK (json_valid(event_details)),
    created_at      DATETIME NOT NULL,
    prev_mac        TEXT     NOT NULL DEFAULT '',
    mac             TEXT     NOT NULL
);
CREATE INDEX idx_vma_connection_audit_enrollment_id ON vma_connection_audit (enrollment_id);
CREATE INDEX idx_vma_connection_audit_event_type ON vma_connection_audit (event_type);
CREATE INDEX idx_vma_connection_audit_created_at ON vma_connection_audit (created_at);
CREATE INDEX idx_vma_connection_audit_vma_fingerprint ON vma_connection_audit (vma_fingerprint);
CREATE INDEX idx_vma_connection_audit_source_ip ON vma_connection_audit (source_ip);
CREATE INDEX idx_vma_connection_audit_vma_name ON vma_connection_audit (vma_name);

-- The head of the audit chain: one row.
CREATE TABLE vma_audit_head (
    id       INTEGER NOT NULL PRIMARY KEY CONSTRAINT ck_vma_audit_head_single_row CHECK (id = 1),
    last_id  INTEGER NOT NULL,
    last_mac TEXT    NOT NULL DEFAULT ''
);
INSERT INTO vma_audit_head (id, last_id, last_mac) VALUES (1, 0, '');

CREATE TABLE admin_tokens (
    name         TEXT     NOT NULL PRIMARY KEY,
    token_hash   TEXT     NOT NULL,
    created_at   DATETIME NOT NULL,
    last_used_at DATETIME NULL,
    revoked_at   DATETIME NULL,
    CONSTRAINT uq_admin_tokens_token_hash UNIQUE (token_hash)
);
