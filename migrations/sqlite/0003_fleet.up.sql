-- 0003: fleets (issue 17). A pairing code may allow several uses, carry
-- labels, pre-approve what it enrolls (optionally only from some
-- addresses) and be revoked; an enrollment records which code made it and
-- its labels (the admin's, copied from the code, and the VMA's own).
--
-- Existing codes keep one use; codes already used count one use.
ALTER TABLE vma_pairing_codes ADD COLUMN max_uses INTEGER NOT NULL DEFAULT 1;
ALTER TABLE vma_pairing_codes ADD COLUMN use_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vma_pairing_codes ADD COLUMN labels TEXT NOT NULL DEFAULT '';
ALTER TABLE vma_pairing_codes ADD COLUMN auto_approve INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vma_pairing_codes ADD COLUMN from_cidr TEXT NOT NULL DEFAULT '';
ALTER TABLE vma_pairing_codes ADD COLUMN revoked_at DATETIME NULL;
ALTER TABLE vma_pairing_codes ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';
UPDATE vma_pairing_codes SET use_count = 1 WHERE used_at IS NOT NULL;

ALTER TABLE vma_enrollments ADD COLUMN pairing_code_id TEXT NOT NULL DEFAULT '';
ALTER TABLE vma_enrollments ADD COLUMN labels TEXT NOT NULL DEFAULT '';
ALTER TABLE vma_enrollments ADD COLUMN vma_labels TEXT NOT NULL DEFAULT '';
UPDATE vma_enrollments SET pairing_code_id = COALESCE(
    (SELECT c.id FROM vma_pairing_codes c WHERE c.pairing_code_hash = vma_enrollments.pairing_code_hash), '');
CREATE INDEX idx_vma_enrollments_pairing_code_id ON vma_enrollments (pairing_code_id);
