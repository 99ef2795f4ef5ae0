package platform

import (
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

func testSession(id byte, dev iotpay.DeviceID, expires time.Time) *session {
	return &session{keys: &wire.Session{ID: []byte{id, 0, 0, 0, 0, 0, 0, 0}}, device: dev, gx: string([]byte{id}), expires: expires}
}

// TestSessionsBounds: the table keeps at most PerDeviceMax sessions a
// device (the oldest goes), at most Max in all (the least recently used
// goes), forgets expired sessions and knows each hello key while its
// session lives.
func TestSessionsBounds(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	later := now.Add(time.Hour)
	tab := &Sessions{Max: 3, PerDeviceMax: 2}
	a, b := iotpay.DeviceID("dev_a"), iotpay.DeviceID("dev_b")
	tab.add(testSession(1, a, later))
	tab.add(testSession(2, a, later))
	tab.add(testSession(3, a, later)) // ends 1, a's oldest
	if tab.get([]byte{1, 0, 0, 0, 0, 0, 0, 0}, now) != nil || tab.used([]byte{1}) || tab.Len() != 2 {
		t.Fatal("a device's oldest session outlived the per-device bound")
	}
	tab.add(testSession(4, b, later))
	tab.get([]byte{2, 0, 0, 0, 0, 0, 0, 0}, now) // 2 used: 3 is now the least recent
	tab.add(testSession(5, b, later))            // the table is full: 3 goes
	if tab.get([]byte{3, 0, 0, 0, 0, 0, 0, 0}, now) != nil || tab.get([]byte{2, 0, 0, 0, 0, 0, 0, 0}, now) == nil || tab.Len() != 3 {
		t.Fatal("the least recently used session outlived the bound")
	}
	if tab.get([]byte{4, 0, 0, 0, 0, 0, 0, 0}, later) != nil || tab.Len() != 2 {
		t.Fatal("an expired session was returned")
	}
	if tab.add(testSession(2, b, later)) { // the same hello key as a live session's
		t.Fatal("a second session of one hello key was added")
	}
	tab.Drop(b)
	if tab.Len() != 1 || !tab.used([]byte{2}) {
		t.Fatal("Drop ended another device's session")
	}
}

// TestSessionMessagesBound: a session carries at most MessagesMax
// requests; then it says so (conflict) and the caller ends it.
func TestSessionMessagesBound(t *testing.T) {
	s := &session{keys: &wire.Session{ID: make([]byte, 8)}, messages: 5}
	if _, err := s.admit(&wire.Encrypt0{HasSeq: true, Kid: make([]byte, 8)}, 5); iotpay.ErrorCode(err) != iotpay.ECONFLICT {
		t.Fatalf("used-up session: %v", err)
	}
}
