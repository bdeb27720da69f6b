-- 0004: VMA key rotation (vma-enroll rotate, POST /api/v1/vma/rotate).
--
-- One row per enrollment that rotated its key at least once: the newest
-- rotation. While previous_until is set and in the future the OMA still
-- accepts the previous key (the grace that leaves no crash window: the VMA
-- may not have promoted the new key yet); the first authentication with the
-- new key, or the end of the grace, ends it (previous_until NULL).
CREATE TABLE vma_key_rotations (
    enrollment_id        TEXT     NOT NULL PRIMARY KEY
        CONSTRAINT fk_vma_key_rotations_enrollment REFERENCES vma_enrollments (id) ON DELETE CASCADE,
    previous_public_key  TEXT     NOT NULL,
    previous_fingerprint TEXT     NOT NULL,
    previous_until       DATETIME NULL,
    rotations            INTEGER  NOT NULL DEFAULT 0,
    rotated_at           DATETIME NOT NULL
);
CREATE INDEX idx_vma_key_rotations_previous ON vma_key_rotations (previous_fingerprint);
