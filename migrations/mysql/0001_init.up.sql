-- Enrollment schema for MariaDB / MySQL (InnoDB, utf8mb4).
--
-- Secrets are stored only as SHA-256 hex hashes. Times are DATETIME(6) in UTC.
-- Optional text columns are NOT NULL DEFAULT '' so that the application can
-- use plain strings; only foreign keys that must be able to point nowhere are
-- nullable. Status and event type are plain VARCHARs (the application checks
-- them) so that new values need no schema change. Tables use utf8mb4_bin so
-- that comparisons and ordering match SQLite's (case-sensitive, bytewise).

CREATE TABLE vma_enrollments (
    id                VARCHAR(36)   NOT NULL,
    pairing_code_hash CHAR(64)      NOT NULL,
    vma_public_key    TEXT          NOT NULL,
    vma_name          VARCHAR(255)  NOT NULL DEFAULT '',
    vma_version       VARCHAR(100)  NOT NULL DEFAULT '',
    vma_fingerprint   VARCHAR(255)  NOT NULL DEFAULT '',
    vma_ip_address    VARCHAR(45)   NOT NULL DEFAULT '',
    vma_user_agent    VARCHAR(255)  NOT NULL DEFAULT '',
    challenge_nonce   VARCHAR(64)   NOT NULL DEFAULT '',
    poll_token_hash   CHAR(64)      NOT NULL DEFAULT '',
    status            VARCHAR(32)   NOT NULL,
    approved_by       VARCHAR(255)  NOT NULL DEFAULT '',
    approved_at       DATETIME(6)   NULL,
    approval_notes    VARCHAR(1024) NOT NULL DEFAULT '',
    rejected_by       VARCHAR(255)  NOT NULL DEFAULT '',
    rejected_at       DATETIME(6)   NULL,
    rejection_reason  VARCHAR(1024) NOT NULL DEFAULT '',
    revoked_by        VARCHAR(255)  NOT NULL DEFAULT '',
    revoked_at        DATETIME(6)   NULL,
    revocation_reason VARCHAR(1024) NOT NULL DEFAULT '',
    verified_at       DATETIME(6)   NULL,
    tunnel_port       INT           NULL,
    expires_at        DATETIME(6)   NULL,
    created_at        DATETIME(6)   NOT NULL,
    updated_at        DATETIME(6)   NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_vma_enrollments_pairing_code_hash (pairing_code_hash),
    UNIQUE KEY uq_vma_enrollments_tunnel_port (tunnel_port),
    KEY idx_vma_enrollments_status (status),
    KEY idx_vma_enrollments_expires_at (expires_at),
    KEY idx_vma_enrollments_created_at (created_at),
    KEY idx_vma_enrollments_approved_by (approved_by),
    KEY idx_vma_enrollments_vma_name (vma_name),
    KEY idx_vma_enrollments_vma_fingerprint (vma_fingerprint)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE vma_pairing_codes (
    id                    VARCHAR(36)  NOT NULL,
    pairing_code_hash     CHAR(64)     NOT NULL,
    code_hint             VARCHAR(32)  NOT NULL DEFAULT '',
    generated_by          VARCHAR(255) NOT NULL DEFAULT '',
    note                  VARCHAR(255) NOT NULL DEFAULT '',
    used_by_enrollment_id VARCHAR(36)  NULL,
    expires_at            DATETIME(6)  NOT NULL,
    used_at               DATETIME(6)  NULL,
    created_at            DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_vma_pairing_codes_pairing_code_hash (pairing_code_hash),
    KEY idx_vma_pairing_codes_expires_at (expires_at),
    KEY idx_vma_pairing_codes_used_by (used_by_enrollment_id),
    CONSTRAINT fk_vma_pairing_codes_enrollment FOREIGN KEY (used_by_enrollment_id)
        REFERENCES vma_enrollments (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE vma_active_connections (
    id                VARCHAR(36)  NOT NULL,
    enrollment_id     VARCHAR(36)  NOT NULL,
    vma_name          VARCHAR(255) NOT NULL DEFAULT '',
    vma_fingerprint   VARCHAR(255) NOT NULL DEFAULT '',
    ssh_user          VARCHAR(50)  NOT NULL DEFAULT 'vma_tunnel',
    connection_status VARCHAR(32)  NOT NULL DEFAULT 'disconnected',
    tunnel_port       INT          NULL,
    remote_addr       VARCHAR(255) NOT NULL DEFAULT '',
    last_seen_at      DATETIME(6)  NULL,
    connected_at      DATETIME(6)  NULL,
    revoked_at        DATETIME(6)  NULL,
    revoked_by        VARCHAR(255) NOT NULL DEFAULT '',
    created_at        DATETIME(6)  NOT NULL,
    updated_at        DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_vma_active_connections_enrollment_id (enrollment_id),
    KEY idx_vma_active_connections_status (connection_status),
    KEY idx_vma_active_connections_vma_name (vma_name),
    CONSTRAINT fk_vma_active_connections_enrollment FOREIGN KEY (enrollment_id)
        REFERENCES vma_enrollments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The audit trail. id is assigned by the application (the chain head plus
-- one, under the head's row lock), not by AUTO_INCREMENT. event_details is
-- LONGTEXT checked as JSON rather than the JSON type: MySQL 8 would rewrite
-- a JSON value (key order, spacing) and so break its MAC.
CREATE TABLE vma_connection_audit (
    id              BIGINT       NOT NULL,
    enrollment_id   VARCHAR(36)  NULL,
    event_type      VARCHAR(64)  NOT NULL,
    vma_name        VARCHAR(255) NOT NULL DEFAULT '',
    vma_fingerprint VARCHAR(255) NOT NULL DEFAULT '',
    source_ip       VARCHAR(45)  NOT NULL DEFAULT '',
    user_agent      VARCHAR(255) NOT NULL DEFAULT '',
    approved_by     VARCHAR(255) NOT NULL DEFAULT '',
    event_details   LONGTEXT     NOT NULL,
    created_at      DATETIME(6)  NOT NULL,
    prev_mac        CHAR(64)     NOT NULL DEFAULT '',
    mac             CHAR(64)     NOT NULL,
    PRIMARY KEY (id),
    KEY idx_vma_connection_audit_enrollment_id (enrollment_id),
    KEY idx_vma_connection_audit_event_type (event_type),
    KEY idx_vma_connection_audit_created_at (created_at),
    KEY idx_vma_connection_audit_vma_fingerprint (vma_fingerprint),
    KEY idx_vma_connection_audit_source_ip (source_ip),
    KEY idx_vma_connection_audit_vma_name (vma_name),
    CONSTRAINT ck_vma_connection_audit_event_details CHECK (JSON_VALID(event_details)),
    CONSTRAINT fk_vma_connection_audit_enrollment FOREIGN KEY (enrollment_id)
        REFERENCES vma_enrollments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The head of the audit chain: one row, locked by every transaction that
-- appends to the chain.
CREATE TABLE vma_audit_head (
    id       INT      NOT NULL,
    last_id  BIGINT   NOT NULL,
    last_mac CHAR(64) NOT NULL DEFAULT '',
    PRIMARY KEY (id),
    CONSTRAINT ck_vma_audit_head_single_row CHECK (id = 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO vma_audit_head (id, last_id, last_mac) VALUES (1, 0, '');

CREATE TABLE admin_tokens (
    name         VARCHAR(64) NOT NULL,
    token_hash   CHAR(64)    NOT NULL,
    created_at   DATETIME(6) NOT NULL,
    last_used_at DATETIME(6) NULL,
    revoked_at   DATETIME(6) NULL,
    PRIMARY KEY (name),
    UNIQUE KEY uq_admin_tokens_token_hash (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
