-- Back to the status index of 0001.
ALTER TABLE vma_enrollments
    ADD KEY idx_vma_enrollments_status (status),
    DROP KEY idx_vma_enrollments_status_name;
