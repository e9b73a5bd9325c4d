-- A tenant's own request rate limit per key, set by a god key (docs/api.md, "Rate limits"):
-- requests a second, 0 for none; NULL follows the servers' --rate-limit-per-key.
ALTER TABLE tenants ADD COLUMN rate_limit_per_key integer CHECK (rate_limit_per_key >= 0);
