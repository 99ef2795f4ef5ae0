package conns_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotpay/iotpay/bench/conns"
	"github.com/iotpay/iotpay/platform/daemon"
)

// TestHoldConnections: devices enrolled over the API of a running
// platform each hold an MQTT connection over TLS with their certificate.
func TestHoldConnections(t *testing.T) {
	d, err := daemon.Open(context.Background(), daemon.Config{DataDir: filepath.Join(t.TempDir(), "d"), HTTPAddr: "127.0.0.1:0",
		MQTTAddr: "127.0.0.1:0", DeviceHTTPAddr: "127.0.0.1:0", CoAPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var progressed bool
	res, err := conns.Run(context.Background(), conns.Config{API: "http://" + d.HTTPAddr(), Key: d.APIKey, MQTT: d.MQTTAddr(),
		Devices: 30, Workers: 8, Hold: 300 * time.Millisecond, PID: os.Getpid(), Progress: func(int, int) { progressed = true }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != 30 || res.StillOpen != 30 || res.Errors != nil || res.RSSAfterBytes <= 0 || res.NoFileLimit == 0 {
		t.Fatalf("%+v", res)
	}
	_ = progressed // reported every 500 devices: not with 30
	if _, err := conns.Run(context.Background(), conns.Config{API: "http://" + d.HTTPAddr()}); err == nil {
		t.Fatal("a config without devices or MQTT address was taken")
	}
}
