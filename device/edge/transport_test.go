package edge

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
)

// The exchanges themselves are tested against a real gateway in
// edge/gateway (round trips, lossy links, FCnt across reboots, busy).

func TestFileCounter(t *testing.T) {
	c := FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}
	if n, err := c.Load(); n != 0 || err != nil {
		t.Fatalf("new counter: %d, %v", n, err)
	}
	if err := c.Save(41); err != nil {
		t.Fatal(err)
	}
	if n, err := (FileCounter{Path: c.Path}).Load(); n != 41 || err != nil {
		t.Fatalf("reloaded counter: %d, %v", n, err)
	}
	os.WriteFile(c.Path, []byte{1, 2}, 0o600)
	if _, err := c.Load(); iotpay.ErrorCode(err) != iotpay.EINTERNAL {
		t.Errorf("damaged counter: %v", err)
	}
}

func TestDialChecks(t *testing.T) {
	fc := FileCounter{Path: filepath.Join(t.TempDir(), "fcnt")}
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	for name, cfg := range map[string]Config{
		"no address":  {DeviceID: id, FCnt: fc},
		"no counter":  {Addr: "127.0.0.1:5683", DeviceID: id},
		"bad device":  {Addr: "127.0.0.1:5683", DeviceID: "x", FCnt: fc},
		"bad block":   {Addr: "127.0.0.1:5683", DeviceID: id, FCnt: fc, BlockSize: 100},
		"attempts":    {Addr: "127.0.0.1:5683", DeviceID: id, FCnt: fc, Attempts: 99},
		"neg timeout": {Addr: "127.0.0.1:5683", DeviceID: id, FCnt: fc, Timeout: -1},
	} {
		if _, err := Dial(context.Background(), cfg); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

func TestBusyError(t *testing.T) {
	var err error = &BusyError{Wait: 10 * time.Second}
	if !errors.Is(err, ErrBusy) || iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Fatalf("%v: not ErrBusy or not EUNAVAILABLE", err)
	}
}
