-- Drops the one-key-one-VMA key. Enrollments revoked by the up migration
-- stay revoked and cleared code hints stay empty.
ALTER TABLE vma_enrollments DROP KEY uq_vma_enrollments_approved_key, DROP COLUMN approved_key;
