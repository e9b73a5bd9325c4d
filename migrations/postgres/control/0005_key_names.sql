-- A key's name is unique among the unrevoked keys of its tenant (god keys among god keys), so
-- `key revoke NAME` names one key. Unrevoked duplicates from before keep the oldest its name;
-- each other gets the first 8 characters of its id appended (staying within 128 characters).
UPDATE api_keys k
SET name = left(k.name, 119) || '-' || left(k.id::text, 8)
WHERE NOT k.revoked
  AND EXISTS (
      SELECT 1 FROM api_keys o
      WHERE NOT o.revoked AND o.id <> k.id AND o.name = k.name AND o.tenant IS NOT DISTINCT FROM k.tenant
        AND (o.created_at, o.id) < (k.created_at, k.id));
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (coalesce(tenant, ''), name) WHERE NOT revoked;
