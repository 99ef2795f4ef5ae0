package sqlstore

// schemaEdge (version 10): a product is of devices that pay or of
// gateways that relay (registry.ProductKind), and may let its devices pay
// offline up to limits (registry.OfflineLimits, as JSON; empty when not).
const schemaEdge = `
ALTER TABLE products ADD COLUMN kind TEXT NOT NULL DEFAULT 'device' CHECK (kind IN ('device','gateway'));
ALTER TABLE products ADD COLUMN offline TEXT NOT NULL DEFAULT '';
`
