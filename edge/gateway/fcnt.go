package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
)

// counters keeps each device's last accepted frame counter, one small file
// per device and port under dir ("dtls/<id>", "udp/<id>", 4 bytes
// big-endian), written before the frame is acted on, so a replayed frame
// is refused even after the gateway's process is killed. The files are
// synced to the disk every syncInterval and at close, not at each frame:
// a power cut may forget the last second's counters, and a frame replayed
// in that window is stored and relayed, then refused by the platform,
// which checks the device's own signed counter and is idempotent on its
// request. The frame counter is the gateway's first line against replays,
// not the only one, and a sync a frame would double a message's cost (its
// queue record is synced already).
//
// The ports keep separate counters: on the plain port a frame's counter is
// not authenticated, so anyone can raise it there; separate counters keep
// such a forgery from locking a device out of its DTLS port.
type counters struct {
	dir string

	mu      sync.Mutex
	devices map[string]*counter // by port/id
	count   [2]int              // devices known per port, bounded by DevicesMax
	dirty   map[string]bool     // files written since the last sync
	newDirs bool                // a file was created since the last sync

	stop chan struct{}
	done chan struct{}
}

// syncInterval is how often written counters are synced to the disk.
const syncInterval = time.Second

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
	c := &counters{dir: dir, devices: make(map[string]*counter), dirty: make(map[string]bool),
		stop: make(chan struct{}), done: make(chan struct{})}
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
	go c.syncer()
	return c, nil
}

// syncer syncs the written counters every syncInterval until close.
func (c *counters) syncer() {
	defer close(c.done)
	t := time.NewTicker(syncInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.sync()
		}
	}
}

// sync syncs the counter files written since the last sync, and their
// directories when a file was created; a failure is reported and the
// files stay to be synced again.
func (c *counters) sync() error {
	c.mu.Lock()
	dirty, newDirs := c.dirty, c.newDirs
	c.dirty, c.newDirs = make(map[string]bool), false
	c.mu.Unlock()
	var errs []error
	for path := range dirty {
		if err := syncFile(path); err != nil {
			errs = append(errs, err)
			c.mu.Lock()
			c.dirty[path] = true
			c.mu.Unlock()
		}
	}
	if newDirs {
		for _, secure := range []bool{false, true} {
			if err := syncDir(filepath.Join(c.dir, portDir(secure))); err != nil {
				errs = append(errs, err)
				c.mu.Lock()
				c.newDirs = true
				c.mu.Unlock()
			}
		}
	}
	return errors.Join(errs...)
}

// close stops the syncer and syncs what is left.
func (c *counters) close() error {
	close(c.stop)
	<-c.done
	return c.sync()
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
	if err := writeCounter(ctr.path, b[:]); err != nil {
		if !ctr.exists {
			c.mu.Lock()
			c.count[portIndex(secure)]--
			c.mu.Unlock()
		}
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot keep a frame counter", err)
	}
	c.mu.Lock()
	c.dirty[ctr.path] = true
	c.newDirs = c.newDirs || !ctr.exists
	c.mu.Unlock()
	ctr.last, ctr.exists = fcnt, true
	return nil
}

// writeCounter writes a counter's 4 bytes in place: one write within a
// sector, which a crash leaves whole or not at all.
func writeCounter(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
