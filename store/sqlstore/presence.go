package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
)

// schemaPresence (version 4): one row a device, its latest connection's
// state. It changes often, so it is kept out of the devices row that
// admission reads and the writer rewrites at each payment.
const schemaPresence = `
CREATE TABLE device_presence (
	device TEXT PRIMARY KEY REFERENCES devices(id),
	online INT64 NOT NULL CHECK (online IN (0, 1)), transport TEXT NOT NULL, since_ms INT64 NOT NULL,
	remote TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT '',
	last_activity_ms INT64 NOT NULL DEFAULT 0, generation INT64 NOT NULL
);
CREATE INDEX device_presence_online ON device_presence(transport, online);
`

// Presence implements registry.Tx.
func (tx *Tx) Presence(ctx context.Context, id iotpay.DeviceID) (*registry.Presence, error) {
	p := &registry.Presence{Device: id}
	var online, since, last int64
	err := tx.row(ctx, `SELECT online, transport, since_ms, remote, reason, status, last_activity_ms, generation
		FROM device_presence WHERE device = ?`, id).
		Scan(&online, &p.Transport, &since, &p.Remote, &p.Reason, &p.Status, &last, &p.Generation)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("presence of device", id)
	}
	if err != nil {
		return nil, err
	}
	p.Online, p.Since, p.LastActivity = online == 1, fromMs(since), fromMs(last)
	return p, nil
}

// PutPresence implements registry.Tx: an upsert, the same statement on
// both databases.
func (tx *Tx) PutPresence(ctx context.Context, p *registry.Presence) error {
	online := int64(0)
	if p.Online {
		online = 1
	}
	_, err := tx.exec(ctx, `INSERT INTO device_presence
		(device, online, transport, since_ms, remote, reason, status, last_activity_ms, generation)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device) DO UPDATE SET online = excluded.online, transport = excluded.transport,
		since_ms = excluded.since_ms, remote = excluded.remote, reason = excluded.reason, status = excluded.status,
		last_activity_ms = excluded.last_activity_ms, generation = excluded.generation`,
		p.Device, online, p.Transport, ms(p.Since), p.Remote, p.Reason, p.Status, ms(p.LastActivity), p.Generation)
	return tx.mapErr(err)
}

// ResetPresence implements registry.Tx.
func (tx *Tx) ResetPresence(ctx context.Context, transport string, at time.Time, reason string) (int, error) {
	res, err := tx.exec(ctx, `UPDATE device_presence SET online = 0, since_ms = ?, reason = ?
		WHERE transport = ? AND online = 1`, ms(at), reason, transport)
	if err != nil {
		return 0, tx.mapErr(err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
