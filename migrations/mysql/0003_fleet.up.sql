-- 0003: fleets (issue 17). A pairing code may allow several uses, carry
-- labels, pre-approve what it enrolls (optionally only from some
-- addresses) and be revoked; an enrollment records which code made it and
-- its labels (the admin's, copied from the code, and the VMA's own).
--
-- Existing codes keep one use; codes already used count one use.
ALTER TABLE vma_pairing_codes
    ADD COLUMN max_uses     INT          NOT NULL DEFAULT 1,
    ADD COLUMN use_count    INT          NOT NULL DEFAULT 0,
    ADD COLUMN labels       TEXT         NOT NULL DEFAULT '',
    ADD COLUMN auto_approve TINYINT(1)   NOT NULL DEFAULT 0,
    ADD COLUMN from_cidr    VARCHAR(255) NOT NULL DEFAULT '',
    ADD COLUMN revoked_at   DATETIME(6)  NULL,
    ADD COLUMN revoked_by   VARCHAR(255) NOT NULL DEFAULT '';
UPDATE vma_pairing_codes SET use_count = 1 WHERE used_at IS NOT NULL;

ALTER TABLE vma_enrollments
    ADD COLUMN pairing_code_id VARCHAR(36) NOT NULL DEFAULT '',
    ADD COLUMN labels          TEXT        NOT NULL DEFAULT '',
    ADD COLUMN vma_labels      TEXT        NOT NULL DEFAULT '',
    ADD KEY idx_vma_enrollments_pairing_code_id (pairing_code_id);
UPDATE vma_enrollments e JOIN vma_pairing_codes c ON c.pairing_code_hash = e.pairing_code_hash
   SET e.pairing_code_id = c.id;
