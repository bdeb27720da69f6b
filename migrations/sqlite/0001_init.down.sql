DROP TABLE IF EXISTS admin_tokens;
DROP TABLE IF EXISTS vma_audit_head;
DROP TABLE IF EXISTS vma_connection_audit;
DROP TABLE IF EXISTS vma_active_connections;
DROP TABLE IF EXISTS vma_pairing_codes;
DROP TABLE IF EXISTS vma_enrollments;
