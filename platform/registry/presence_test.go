package registry

import (
	"testing"
	"time"
)

// TestPresenceOrder: events of an older connection than the recorded one
// change nothing, whatever order they arrive in.
func TestPresenceOrder(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	ev := func(k PresenceKind, gen int64, sec int, reason string) *PresenceEvent {
		return &PresenceEvent{Kind: k, Device: "dev_x", Generation: gen, At: t0.Add(time.Duration(sec) * time.Second),
			Transport: "mqtt", Reason: reason, Status: reason}
	}
	run := func(evs ...*PresenceEvent) *Presence {
		var p *Presence
		for _, e := range evs {
			p, _ = e.apply(p)
		}
		return p
	}
	for name, tc := range map[string]struct {
		evs    []*PresenceEvent
		online bool
		gen    int64
		reason string
	}{
		"connect":                          {[]*PresenceEvent{ev(PresenceConnected, 1, 0, "")}, true, 1, ""},
		"connect, disconnect":              {[]*PresenceEvent{ev(PresenceConnected, 1, 0, ""), ev(PresenceDisconnected, 1, 1, "disconnected")}, false, 1, "disconnected"},
		"takeover, old end after new":      {[]*PresenceEvent{ev(PresenceConnected, 1, 0, ""), ev(PresenceConnected, 2, 1, ""), ev(PresenceDisconnected, 1, 2, "session taken over")}, true, 2, ""},
		"takeover, old end before new":     {[]*PresenceEvent{ev(PresenceConnected, 1, 0, ""), ev(PresenceDisconnected, 1, 1, "session taken over"), ev(PresenceConnected, 2, 1, "")}, true, 2, ""},
		"stale connect after newer":        {[]*PresenceEvent{ev(PresenceConnected, 2, 0, ""), ev(PresenceConnected, 1, 1, "")}, true, 2, ""},
		"disconnect of an unknown connect": {[]*PresenceEvent{ev(PresenceDisconnected, 1, 1, "lost")}, false, 0, ""},
	} {
		t.Run(name, func(t *testing.T) {
			p := run(tc.evs...)
			if p == nil {
				if tc.gen != 0 {
					t.Fatal("no presence")
				}
				return
			}
			if p.Online != tc.online || p.Generation != tc.gen || p.Reason != tc.reason {
				t.Fatalf("presence %+v, want online %v generation %d reason %q", p, tc.online, tc.gen, tc.reason)
			}
		})
	}

	// Activity moves last activity forward only; a status is kept.
	p := run(ev(PresenceConnected, 1, 0, ""), ev(PresenceActivity, 1, 5, ""), ev(PresenceActivity, 1, 3, ""),
		ev(PresenceStatus, 1, 6, "online"), ev(PresenceStatus, 7, 7, "other connection"))
	if !p.LastActivity.Equal(t0.Add(6*time.Second)) || p.Status != "online" {
		t.Fatalf("presence %+v", p)
	}
}
