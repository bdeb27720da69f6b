-- 0002: a public key is approved under at most one enrollment, and pairing
-- codes hashed before the keyed code hash lose their hint.
--
-- Before this migration one key could be approved under two enrollments (a
-- renamed VMA, cloned appliances sharing a key): the SSH endpoint took the
-- first match, and revoking it left the key working under the other. Where
-- that happened, the newest approval keeps the key and the older ones are
-- revoked here (revoked_by 'migration 0002'; a migration cannot write the
-- HMAC-chained audit rows, the enrollment row records it). Then a unique key
-- over a generated column (the fingerprint while approved, else NULL; MySQL
-- has no partial indexes) keeps it so, for every server instance at once.

UPDATE vma_active_connections c
  JOIN vma_enrollments o ON o.id = c.enrollment_id AND o.status = 'approved'
  JOIN vma_enrollments n ON n.status = 'approved' AND n.vma_fingerprint = o.vma_fingerprint
       AND (COALESCE(n.approved_at, n.created_at) > COALESCE(o.approved_at, o.created_at)
            OR (COALESCE(n.approved_at, n.created_at) = COALESCE(o.approved_at, o.created_at) AND n.id > o.id))
   SET c.connection_status = 'revoked', c.revoked_at = UTC_TIMESTAMP(6),
       c.revoked_by = 'migration 0002', c.updated_at = UTC_TIMESTAMP(6);

UPDATE vma_enrollments o
  JOIN vma_enrollments n ON n.status = 'approved' AND n.vma_fingerprint = o.vma_fingerprint
       AND (COALESCE(n.approved_at, n.created_at) > COALESCE(o.approved_at, o.created_at)
            OR (COALESCE(n.approved_at, n.created_at) = COALESCE(o.approved_at, o.created_at) AND n.id > o.id))
   SET o.status = 'revoked', o.revoked_by = 'migration 0002', o.revoked_at = UTC_TIMESTAMP(6),
       o.revocation_reason = 'superseded: the same key is approved under a newer enrollment (one key, one VMA)',
       o.tunnel_port = NULL, o.updated_at = UTC_TIMESTAMP(6)
 WHERE o.status = 'approved';

ALTER TABLE vma_enrollments
  ADD COLUMN approved_key VARCHAR(255)
      AS (CASE WHEN status = 'approved' THEN vma_fingerprint END) STORED,
  ADD UNIQUE KEY uq_vma_enrollments_approved_key (approved_key);

-- Codes from before the keyed code hash are stored as plain SHA-256: their
-- 20-bit hint would leave 40 bits to guess from a copy of the database.
UPDATE vma_pairing_codes SET code_hint = '' WHERE code_hint <> '';
