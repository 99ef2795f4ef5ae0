package sqlstore

// schemaEdge (version 10): a product is of devices that pay or of
// gateways that relay (registry.ProductKind), and may let its devices pay
// offline up to limits (registry.OfflineLimits, as JSON; empty when not),
// and a device's state counts what it paid offline since it was last
// online.
const schemaEdge = `
ALTER TABLE products ADD COLUMN kind TEXT NOT NULL DEFAULT 'device' CHECK (kind IN ('device','gateway'));
ALTER TABLE products ADD COLUMN offline TEXT NOT NULL DEFAULT '';
ALTER TABLE device_state ADD COLUMN offline_count INT64 NOT NULL DEFAULT 0;
ALTER TABLE device_state ADD COLUMN offline_amount INT64 NOT NULL DEFAULT 0;
`
