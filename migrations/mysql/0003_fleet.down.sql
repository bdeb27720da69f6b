-- Drops the fleet columns (labels, multi-use and pre-approved codes). A
-- revoked code stays unusable (marked used).
ALTER TABLE vma_enrollments
    DROP KEY idx_vma_enrollments_pairing_code_id,
    DROP COLUMN vma_labels,
    DROP COLUMN labels,
    DROP COLUMN pairing_code_id;
UPDATE vma_pairing_codes SET used_at = COALESCE(used_at, revoked_at) WHERE revoked_at IS NOT NULL;
ALTER TABLE vma_pairing_codes
    DROP COLUMN revoked_by,
    DROP COLUMN revoked_at,
    DROP COLUMN from_cidr,
    DROP COLUMN auto_approve,
    DROP COLUMN labels,
    DROP COLUMN use_count,
    DROP COLUMN max_uses;
