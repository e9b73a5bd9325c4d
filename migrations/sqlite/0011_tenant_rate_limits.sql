-- The tenant's own request rate limit per key, set by a god key (docs/api.md, "Rate limits"):
-- requests a second, 0 for none; NULL follows the server's --rate-limit-per-key.
ALTER TABLE tenant_settings ADD COLUMN rate_limit_per_key INTEGER CHECK (rate_limit_per_key >= 0);
