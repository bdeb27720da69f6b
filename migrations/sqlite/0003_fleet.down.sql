-- Drops the fleet columns (labels, multi-use and pre-approved codes). A
-- multi-use code that has uses left becomes an unused single-use code.
DROP INDEX IF EXISTS idx_vma_enrollments_pairing_code_id;
ALTER TABLE vma_enrollments DROP COLUMN vma_labels;
ALTER TABLE vma_enrollments DROP COLUMN labels;
ALTER TABLE vma_enrollments DROP COLUMN pairing_code_id;
UPDATE vma_pairing_codes SET used_at = COALESCE(used_at, revoked_at) WHERE revoked_at IS NOT NULL;
ALTER TABLE vma_pairing_codes DROP COLUMN revoked_by;
ALTER TABLE vma_pairing_codes DROP COLUMN revoked_at;
ALTER TABLE vma_pairing_codes DROP COLUMN from_cidr;
ALTER TABLE vma_pairing_codes DROP COLUMN auto_approve;
ALTER TABLE vma_pairing_codes DROP COLUMN labels;
ALTER TABLE vma_pairing_codes DROP COLUMN use_count;
ALTER TABLE vma_pairing_codes DROP COLUMN max_uses;
