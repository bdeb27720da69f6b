-- 0005: VMA key expiry (oma-server --key-max-age).
--
-- One row per VMA key the OMA refused for its age (older than the key max
-- age plus the expiry grace): it makes the key_expired audit event once
-- per key, not once per attempt. Whether a key is refused is the policy's
-- arithmetic on its key_since, not this row.
CREATE TABLE vma_key_expiries (
    enrollment_id TEXT     NOT NULL
        CONSTRAINT fk_vma_key_expiries_enrollment REFERENCES vma_enrollments (id) ON DELETE CASCADE,
    fingerprint   TEXT     NOT NULL,
    expired_at    DATETIME NOT NULL,
    PRIMARY KEY (enrollment_id, fingerprint)
);
