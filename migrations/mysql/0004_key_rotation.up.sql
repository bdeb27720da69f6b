-- 0004: VMA key rotation (vma-enroll rotate, POST /api/v1/vma/rotate).
--
-- One row per enrollment that rotated its key at least once: the newest
-- rotation. While previous_until is set and in the future the OMA still
-- accepts the previous key (the grace that leaves no crash window: the VMA
-- may not have promoted the new key yet); the first authentication with the
-- new key, or the end of the grace, ends it (previous_until NULL).
CREATE TABLE vma_key_rotations (
    enrollment_id        VARCHAR(36)  NOT NULL,
    previous_public_key  VARCHAR(1024) NOT NULL,
    previous_fingerprint VARCHAR(255) NOT NULL,
    previous_until       DATETIME(6)  NULL,
    rotations            INT          NOT NULL DEFAULT 0,
    rotated_at           DATETIME(6)  NOT NULL,
    PRIMARY KEY (enrollment_id),
    KEY idx_vma_key_rotations_previous (previous_fingerprint),
    CONSTRAINT fk_vma_key_rotations_enrollment FOREIGN KEY (enrollment_id)
        REFERENCES vma_enrollments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
