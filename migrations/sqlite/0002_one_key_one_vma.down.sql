-- Drops the one-key-one-VMA index. Enrollments revoked by the up migration
-- stay revoked and cleared code hints stay empty.
DROP INDEX IF EXISTS uq_vma_enrollments_approved_key;
