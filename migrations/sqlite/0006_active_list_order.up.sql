-- 0006: the approved enrollments in the active list's order (omactl active,
-- GET /api/v1/admin/vma/active, the web UI's Active page).
--
-- The active list reads the approved enrollments by name, then id. With
-- this index the database walks them in that order instead of sorting them
-- (SQLite spilled the sort of ten thousand rows to a temporary file: bench
-- row 5). It serves every lookup by status as well, so the status index it
-- extends goes.
CREATE INDEX idx_vma_enrollments_status_name ON vma_enrollments (status, vma_name, id);
DROP INDEX IF EXISTS idx_vma_enrollments_status;
