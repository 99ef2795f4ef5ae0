package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/atomicfile"
)

// counters keeps each device's last accepted frame counter, one small file
// per device and port under dir ("dtls/<id>", "udp/<id>", 4 bytes
// big-endian), replaced atomically and synced before the frame is acted
// on, so a replayed frame is refused even after a restart.
//
// The ports keep separate counters: on the plain port a frame's counter is
// not authenticated, so anyone can raise it there; separate counters keep
// such a forgery from locking a device out of its DTLS port.
type counters struct {
	dir string

	mu      sync.Mutex
	devices map[string]*counter // by port/id
	count   [2]int              // devices known per port, bounded by DevicesMax
}

// counter is one device's counter on one port; mu is held from the check
// to the queue append, so one device's frames are taken one at a time.
type counter struct {
	key    string
	refs   int // lock calls not yet unlocked; guarded by counters.mu
	mu     sync.Mutex
	path   string
	last   uint32
	loaded bool
	exists bool
}

func portDir(secure bool) string {
	if secure {
		return "dtls"
	}
	return "udp"
}

func portIndex(secure bool) int {
	if secure {
		return 1
	}
	return 0
}

// openCounters opens (creating) the counters' directory and counts the
// devices it already knows.
func openCounters(dir string) (*counters, error) {
	c := &counters{dir: dir, devices: make(map[string]*counter)}
	for _, secure := range []bool{false, true} {
		d := filepath.Join(dir, portDir(secure))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot create the counters' directory", err)
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot read the counters' directory", err)
		}
		for _, e := range entries {
			if iotpay.ValidID(iotpay.PrefixDevice, e.Name()) {
				c.count[portIndex(secure)]++
			}
		}
	}
	return c, nil
}

// lock returns device's counter on the port, locked; the caller gives it
// back with unlock.
func (c *counters) lock(secure bool, id iotpay.DeviceID) *counter {
	key := portDir(secure) + "/" + string(id)
	c.mu.Lock()
	ctr := c.devices[key]
	if ctr == nil {
		ctr = &counter{key: key, path: filepath.Join(c.dir, key)}
		c.devices[key] = ctr
	}
	ctr.refs++
	c.mu.Unlock()
	ctr.mu.Lock()
	return ctr
}

// unlock unlocks ctr and forgets it if no frame of it was ever accepted,
// so refused frames with made-up device ids take no memory.
func (c *counters) unlock(ctr *counter) {
	exists := ctr.exists
	ctr.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	ctr.refs--
	if ctr.refs == 0 && !exists && c.devices[ctr.key] == ctr {
		delete(c.devices, ctr.key)
	}
}

// errCounterStale refuses a frame whose counter is not above the last.
var errCounterStale = errors.New("stale frame counter")

// advance checks that fcnt is above device's last counter on the port and
// keeps it, durably, before returning nil. ctr is locked by the caller.
func (c *counters) advance(secure bool, ctr *counter, fcnt uint32) error {
	if !ctr.loaded {
		b, err := os.ReadFile(ctr.path)
		switch {
		case err == nil && len(b) == 4:
			ctr.last, ctr.exists = binary.BigEndian.Uint32(b), true
		case err == nil:
			return iotpay.Errorf(iotpay.EINTERNAL, "gateway: counter file %s is damaged", ctr.path)
		case !errors.Is(err, fs.ErrNotExist):
			return iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot read a frame counter", err)
		}
		ctr.loaded = true
	}
	if ctr.exists && fcnt <= ctr.last {
		return fmt.Errorf("%w: %d not above %d", errCounterStale, fcnt, ctr.last)
	}
	if !ctr.exists {
		c.mu.Lock()
		full := c.count[portIndex(secure)] >= DevicesMax
		if !full {
			c.count[portIndex(secure)]++
		}
		c.mu.Unlock()
		if full {
			return iotpay.Errorf(iotpay.EUNAVAILABLE, "gateway: too many devices")
		}
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], fcnt)
	if err := atomicfile.Write(ctr.path, b[:], 0o600); err != nil {
		if !ctr.exists {
			c.mu.Lock()
			c.count[portIndex(secure)]--
			c.mu.Unlock()
		}
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot keep a frame counter", err)
	}
	if !ctr.exists {
		// The file's first directory entry must survive a crash too.
		if err := syncDir(filepath.Dir(ctr.path)); err != nil {
			return iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot keep a frame counter", err)
		}
	}
	ctr.last, ctr.exists = fcnt, true
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
