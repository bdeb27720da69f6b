-- Drops the records of refused expired keys (the key_expired audit events stay).
DROP TABLE IF EXISTS vma_key_expiries;
