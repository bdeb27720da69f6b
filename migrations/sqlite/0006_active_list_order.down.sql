-- Back to the status index of 0001.
CREATE INDEX IF NOT EXISTS idx_vma_enrollments_status ON vma_enrollments (status);
DROP INDEX IF EXISTS idx_vma_enrollments_status_name;
