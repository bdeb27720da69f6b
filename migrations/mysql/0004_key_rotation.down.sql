-- Drops the key rotation records; the enrollments keep their current keys.
DROP TABLE IF EXISTS vma_key_rotations;
