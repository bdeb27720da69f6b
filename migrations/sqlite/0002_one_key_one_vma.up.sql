-- 0002: a public key is approved under at most one enrollment, and pairing
-- codes hashed before the keyed code hash lose their hint.
--
-- Before this migration one key could be approved under two enrollments (a
-- renamed VMA, cloned appliances sharing a key): the SSH endpoint took the
-- first match, and revoking it left the key working under the other. Where
-- that happened, the newest approval keeps the key and the older ones are
-- revoked here (revoked_by 'migration 0002'; a migration cannot write the
-- HMAC-chained audit rows, the enrollment row records it). Then a unique
-- index over the fingerprints of approved enrollments keeps it so, for every
-- server instance at once.

UPDATE vma_active_connections
   SET connection_status = 'revoked',
       revoked_at = strftime('%Y-%m-%d %H:%M:%f', 'now') || '000',
       revoked_by = 'migration 0002',
       updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'
 WHERE enrollment_id IN (
       SELECT o.id FROM vma_enrollments o
        WHERE o.status = 'approved'
          AND EXISTS (SELECT 1 FROM vma_enrollments n
                       WHERE n.status = 'approved' AND n.vma_fingerprint = o.vma_fingerprint
                         AND (COALESCE(n.approved_at, n.created_at) > COALESCE(o.approved_at, o.created_at)
                              OR (COALESCE(n.approved_at, n.created_at) = COALESCE(o.approved_at, o.created_at) AND n.id > o.id))));

UPDATE vma_enrollments
   SET status = 'revoked',
       revoked_by = 'migration 0002',
       revoked_at = strftime('%Y-%m-%d %H:%M:%f', 'now') || '000',
       revocation_reason = 'superseded: the same key is approved under a newer enrollment (one key, one VMA)',
       tunnel_port = NULL,
       updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'
 WHERE status = 'approved'
   AND EXISTS (SELECT 1 FROM vma_enrollments n
                WHERE n.status = 'approved' AND n.vma_fingerprint = vma_enrollments.vma_fingerprint
                  AND (COALESCE(n.approved_at, n.created_at) > COALESCE(vma_enrollments.approved_at, vma_enrollments.created_at)
                       OR (COALESCE(n.approved_at, n.created_at) = COALESCE(vma_enrollments.approved_at, vma_enrollments.created_at)
                           AND n.id > vma_enrollments.id)));

CREATE UNIQUE INDEX uq_vma_enrollments_approved_key ON vma_enrollments (vma_fingerprint) WHERE status = 'approved';

-- Codes from before the keyed code hash are stored as plain SHA-256: their
-- 20-bit hint would leave 40 bits to guess from a copy of the database.
UPDATE vma_pairing_codes SET code_hint = '' WHERE code_hint <> '';
