-- A key's name is unique among the unrevoked keys of its tenant (god keys among god keys), so
-- `key revoke NAME` names one key. Unrevoked duplicates from before keep the oldest its name;
-- each other gets the first 8 characters of its id appended (staying within 128 characters).
UPDATE api_keys
SET name = substr(name, 1, 119) || '-' || substr(id, 1, 8)
WHERE revoked = 0
  AND EXISTS (
      SELECT 1 FROM api_keys o
      WHERE o.revoked = 0 AND o.id <> api_keys.id AND o.name = api_keys.name AND o.tenant IS api_keys.tenant
        AND (o.created_at < api_keys.created_at OR (o.created_at = api_keys.created_at AND o.id < api_keys.id)));
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (coalesce(tenant, ''), name) WHERE revoked = 0;
