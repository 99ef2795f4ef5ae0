package mqtt

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
)

// The round trip through a broker is tested with the broker, in
// platform/mqtt.

func TestDialRejectsBadConfig(t *testing.T) {
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	for name, cfg := range map[string]Config{
		"no address":   {TLS: &tls.Config{}, DeviceID: id},
		"no TLS":       {Addr: "127.0.0.1:1", DeviceID: id},
		"bad id":       {Addr: "127.0.0.1:1", TLS: &tls.Config{}, DeviceID: "acc_x"},
		"many retries": {Addr: "127.0.0.1:1", TLS: &tls.Config{}, DeviceID: id, Attempts: attemptsMax + 1},
	} {
		if _, err := Dial(context.Background(), cfg); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: got %v, want EINVALID", name, err)
		}
	}
}

func TestDialUnreachable(t *testing.T) {
	// A port just released: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	_, err = Dial(context.Background(), Config{Addr: addr, TLS: &tls.Config{}, DeviceID: id, Timeout: time.Second})
	if iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Fatalf("got %v, want EUNAVAILABLE", err)
	}
}

func TestDialHonorsContext(t *testing.T) {
	// A listener that accepts and stays silent: the TLS handshake hangs.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	id := iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, time.Now(), nil))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Dial(ctx, Config{Addr: l.Addr().String(), TLS: &tls.Config{}, DeviceID: id, Timeout: 5 * time.Second})
	if iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
		t.Fatalf("got %v, want EUNAVAILABLE", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Dial took %v despite its context", d)
	}
}
