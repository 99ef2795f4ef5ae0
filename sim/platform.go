package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform/daemon"
)

// Target is the running iotpayd a fleet drives: its operator API and its
// device access points. The platform CA the devices trust comes from their
// enrollment.
type Target struct {
	APIURL   string // http(s)://host:port of the operator API
	APIKey   string // an operator API key (IOTPAY_API_KEY)
	MQTTAddr string // host:port of MQTT/TLS; needed for MQTT devices
	CoAPAddr string // host:port of CoAP/DTLS; needed for CoAP devices
}

// Fees are what an in-process platform takes on every capture, as the
// demo's: 2% to the operator, 1% to the platform, so every payment pays
// its fee legs.
var Fees = payment.FeePlan{OperatorBps: 200, PlatformBps: 100}

// Local is an iotpayd running in this process on loopback ports, with its
// data in a directory of its own.
type Local struct {
	Target
	Daemon *daemon.Daemon
	dir    string // removed at Close when the platform made it
}

// StartLocal opens and starts a platform in dataDir (a new temporary
// directory, removed at Close, when empty), listening on 127.0.0.1 ports
// the system picks. A nil logger discards the platform's log.
func StartLocal(ctx context.Context, dataDir string, logger *slog.Logger) (*Local, error) {
	l := &Local{}
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "iotpay-sim-*")
		if err != nil {
			return nil, err
		}
		l.dir, dataDir = tmp, tmp
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := daemon.Open(ctx, daemon.Config{DataDir: filepath.Join(dataDir, "platform"), HTTPAddr: "127.0.0.1:0",
		MQTTAddr: "127.0.0.1:0", DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0", Fees: Fees, Logger: logger})
	if err != nil {
		l.removeDir()
		return nil, err
	}
	if d.APIKey == "" {
		d.Close()
		l.removeDir()
		return nil, fmt.Errorf("sim: %s already holds a platform: an in-process run needs a fresh data directory", dataDir)
	}
	if err := d.Start(); err != nil {
		d.Close()
		l.removeDir()
		return nil, err
	}
	l.Daemon = d
	l.Target = Target{APIURL: "http://" + d.HTTPAddr(), APIKey: d.APIKey, MQTTAddr: d.MQTTAddr(), CoAPAddr: d.CoAPAddr()}
	return l, nil
}

func (l *Local) removeDir() {
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

// Close stops the platform and removes the directory StartLocal made.
func (l *Local) Close() error {
	err := l.Daemon.Close()
	l.removeDir()
	return err
}
