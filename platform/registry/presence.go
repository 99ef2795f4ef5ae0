package registry

import (
	"context"
	"time"

	"github.com/iotpay/iotpay"
)

// Presence bounds.
const (
	// PresenceStatusBytesMax bounds the status text a device reports (its
	// status messages and its last will).
	PresenceStatusBytesMax = 256
	// PresenceEventsMax bounds the events recorded in one transaction.
	PresenceEventsMax = 1024
)

// Presence is whether a device is connected to the platform now: the
// state of its latest connection, as a transport saw it.
type Presence struct {
	Device iotpay.DeviceID `json:"-"`
	Online bool            `json:"online"`
	// Transport is the access the connection came over ("mqtt").
	Transport string `json:"transport"`
	// Since is when the device came online or went offline.
	Since time.Time `json:"since"`
	// Remote is the connection's peer address.
	Remote string `json:"remote,omitempty"`
	// Reason says why an offline device went offline: "disconnected" (it
	// said goodbye), "keepalive timeout", "connection lost", "session
	// taken over", "revoked"…
	Reason string `json:"reason,omitempty"`
	// Status is the last status the device reported on its status topic,
	// or its last will once published.
	Status string `json:"status,omitempty"`
	// LastActivity is when the device was last heard from, to within the
	// transport's throttling interval.
	LastActivity time.Time `json:"last_activity,omitzero"`
	// Generation orders the device's connections: an event of an older
	// connection than the recorded one changes nothing, so a device that
	// reconnected is not marked offline by its old connection's end.
	Generation int64 `json:"-"`
}

// PresenceKind is what a presence event reports.
type PresenceKind int

// Presence event kinds.
const (
	PresenceConnected    PresenceKind = iota + 1 // a connection was admitted
	PresenceDisconnected                         // it ended, for Reason
	PresenceActivity                             // the device was heard from
	PresenceStatus                               // the device reported Status
)

// PresenceEvent is one thing a transport saw on a device's connection.
type PresenceEvent struct {
	Kind       PresenceKind
	Device     iotpay.DeviceID
	Generation int64 // the connection's; increasing with each new connection
	At         time.Time
	Transport  string // PresenceConnected
	Remote     string // PresenceConnected
	Reason     string // PresenceDisconnected
	Status     string // PresenceStatus, and PresenceDisconnected when a will was published
}

// apply returns p after ev, and whether it changed; p may be nil (no
// presence recorded yet).
func (ev *PresenceEvent) apply(p *Presence) (*Presence, bool) {
	if ev.Kind == PresenceConnected {
		if p != nil && ev.Generation <= p.Generation {
			return p, false // a connection older than the one recorded
		}
		return &Presence{Device: ev.Device, Online: true, Transport: ev.Transport, Since: ev.At, Remote: ev.Remote,
			LastActivity: ev.At, Generation: ev.Generation}, true
	}
	if p == nil || p.Generation != ev.Generation {
		return p, false // about another connection than the recorded one
	}
	q := *p
	if ev.At.After(q.LastActivity) {
		q.LastActivity = ev.At
	}
	switch ev.Kind {
	case PresenceDisconnected:
		if !q.Online {
			return p, false
		}
		q.Online, q.Since, q.Reason = false, ev.At, ev.Reason
		if ev.Status != "" {
			q.Status = ev.Status
		}
	case PresenceStatus:
		q.Status = ev.Status
	case PresenceActivity:
		if q.LastActivity.Equal(p.LastActivity) {
			return p, false
		}
	default:
		return p, false
	}
	return &q, true
}

// RecordPresence applies a transport's events, in order, in one
// transaction. Events about a connection older than the device's recorded
// one are ignored, whatever order they arrive in.
func (s *Service) RecordPresence(ctx context.Context, evs []PresenceEvent) error {
	if len(evs) == 0 {
		return nil
	}
	if len(evs) > PresenceEventsMax {
		return iotpay.Errorf(iotpay.EINVALID, "at most %d presence events at once", PresenceEventsMax)
	}
	return s.Store.Update(ctx, func(tx Tx) error {
		cur := make(map[iotpay.DeviceID]*Presence)
		changed := make(map[iotpay.DeviceID]bool)
		var order []iotpay.DeviceID
		for i := range evs {
			ev := &evs[i]
			if len(ev.Status) > PresenceStatusBytesMax {
				ev.Status = ev.Status[:PresenceStatusBytesMax]
			}
			p, seen := cur[ev.Device]
			if !seen {
				var err error
				p, err = tx.Presence(ctx, ev.Device)
				if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
					p, err = nil, nil
				}
				if err != nil {
					return err
				}
				order = append(order, ev.Device)
			}
			var ok bool
			if cur[ev.Device], ok = ev.apply(p); ok {
				changed[ev.Device] = true
			}
		}
		for _, id := range order {
			if changed[id] {
				if err := tx.PutPresence(ctx, cur[id]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ResetPresence marks offline, for reason, every device a previous run of
// transport left online: after a restart no connection survives.
func (s *Service) ResetPresence(ctx context.Context, transport, reason string) (int, error) {
	var n int
	err := s.Store.Update(ctx, func(tx Tx) error {
		var err error
		n, err = tx.ResetPresence(ctx, transport, s.now(), reason)
		return err
	})
	return n, err
}

// DevicePresence returns a tenant's device's presence; nil, without an
// error, if it never connected.
func (s *Service) DevicePresence(ctx context.Context, tenant iotpay.TenantID, id iotpay.DeviceID) (*Presence, error) {
	var p *Presence
	err := s.Store.View(ctx, func(tx Tx) error {
		if _, err := s.tenantDevice(ctx, tx, tenant, id); err != nil {
			return err
		}
		var err error
		p, err = tx.Presence(ctx, id)
		if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
			p, err = nil, nil
		}
		return err
	})
	return p, err
}
