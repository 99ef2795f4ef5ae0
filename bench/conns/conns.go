// Package conns measures how many mutual-TLS device connections a running
// iotpayd holds, and what each costs it in memory: it enrolls devices
// through the operator API (each its own P-256 key and certificate), opens
// one MQTT connection per device over TLS 1.3 with the device's
// certificate, holds them all, and reads the platform process's resident
// memory before and after.
//
// The platform should run in a process of its own (iotpay bench conns
// starts one), so that its memory is its own and so is its file
// descriptor budget: both ends of every connection in one process would
// halve it.
package conns

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/bench/mqttload"
	"github.com/iotpay/iotpay/device"
	"github.com/iotpay/iotpay/internal/opapi"
)

// Config says what to measure against which platform.
type Config struct {
	// API is the platform's operator API URL, Key its API key.
	API, Key string
	// MQTT is the platform's MQTT/TLS address.
	MQTT string
	// Devices is how many devices enroll and connect.
	Devices int
	// Workers enroll and connect at once (64 when zero).
	Workers int
	// Hold is how long the connections are held once all are open
	// (10 s when zero); the platform's memory is read at its end.
	Hold time.Duration
	// PID is the platform's process, whose resident memory is read from
	// /proc (0: not read).
	PID int
	// Progress, when set, is told how many devices are enrolled and
	// connected as it goes.
	Progress func(enrolled, connected int)
	// Measure, when set, runs with every connection held, before the
	// platform's memory is read (a heap profile taken then).
	Measure func()
}

// Result is what was measured.
type Result struct {
	Devices   int            `json:"devices"`
	Connected int            `json:"connected"`
	Errors    map[string]int `json:"errors,omitempty"`
	// EnrollSeconds is the time to create and enroll the devices,
	// ConnectSeconds to open every connection (TLS 1.3 handshake with
	// the device's certificate, MQTT CONNECT and CONNACK).
	EnrollSeconds    float64 `json:"enroll_s"`
	ConnectSeconds   float64 `json:"connect_s"`
	ConnectsPerSec   float64 `json:"connects_per_sec"`
	HeldSeconds      float64 `json:"held_s"`
	StillOpen        int     `json:"still_open"`
	RSSBeforeBytes   int64   `json:"rss_before_bytes"`
	RSSAfterBytes    int64   `json:"rss_after_bytes"`
	RSSPerConnection int64   `json:"rss_per_connection_bytes"`
	// NoFileLimit is this process's open-file limit, which bounds the
	// connections it can open.
	NoFileLimit uint64 `json:"nofile_limit"`
}

// Run enrolls cfg.Devices devices, connects them all, holds the
// connections and measures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Devices <= 0 || cfg.API == "" || cfg.MQTT == "" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "conns: need Devices, API and MQTT")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 10 * time.Second
	}
	api := opapi.New(strings.TrimRight(cfg.API, "/"), cfg.Key, cfg.Workers)
	defer api.Close()
	res := &Result{Devices: cfg.Devices, Errors: map[string]int{}, NoFileLimit: NoFileLimit()}
	var mu sync.Mutex
	fail := func(what string, err error) {
		mu.Lock()
		res.Errors[what+": "+shorten(err)]++
		mu.Unlock()
	}

	// A product for the fleet.
	var merchant struct{ ID string }
	if err := api.Do(ctx, "POST", "/v1/accounts", "", map[string]any{"name": "conns merchant", "kind": "merchant", "currency": "EUR"}, &merchant); err != nil {
		return nil, err
	}
	var prod struct{ ID iotpay.ProductID }
	if err := api.Do(ctx, "POST", "/v1/products", "", map[string]any{"name": "conns", "merchant_account": merchant.ID,
		"pricing": map[string]any{"mode": "amount", "currency": "EUR"}}, &prod); err != nil {
		return nil, err
	}

	// Enroll.
	start := time.Now()
	ids := make([]*device.Identity, cfg.Devices)
	var enrolled, connected atomic.Int64
	each(ctx, cfg.Devices, cfg.Workers, func(i int) {
		id, err := enroll(ctx, api, prod.ID, i)
		if err != nil {
			fail("enroll", err)
			return
		}
		ids[i] = id
		if n := enrolled.Add(1); cfg.Progress != nil && n%500 == 0 {
			cfg.Progress(int(n), 0)
		}
	})
	res.EnrollSeconds = time.Since(start).Seconds()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	time.Sleep(2 * time.Second) // the platform settles after the enrollments
	res.RSSBeforeBytes = rss(cfg.PID)

	// Connect and hold.
	start = time.Now()
	conns := make([]net.Conn, cfg.Devices)
	each(ctx, cfg.Devices, cfg.Workers, func(i int) {
		if ids[i] == nil {
			return
		}
		c, err := connect(ctx, cfg.MQTT, ids[i])
		if err != nil {
			fail("connect", err)
			return
		}
		conns[i] = c
		if n := connected.Add(1); cfg.Progress != nil && n%500 == 0 {
			cfg.Progress(int(enrolled.Load()), int(n))
		}
	})
	res.ConnectSeconds = time.Since(start).Seconds()
	res.Connected = int(connected.Load())
	if res.ConnectSeconds > 0 {
		res.ConnectsPerSec = float64(res.Connected) / res.ConnectSeconds
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	held := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(cfg.Hold):
	}
	res.HeldSeconds = time.Since(held).Seconds()
	res.RSSAfterBytes = rss(cfg.PID)
	if cfg.Measure != nil {
		cfg.Measure()
	}
	if res.Connected > 0 && res.RSSBeforeBytes > 0 {
		res.RSSPerConnection = (res.RSSAfterBytes - res.RSSBeforeBytes) / int64(res.Connected)
	}
	// Still open: a connection the broker closed reads EOF at once.
	for _, c := range conns {
		if c != nil && alive(c) {
			res.StillOpen++
		}
	}
	if len(res.Errors) == 0 {
		res.Errors = nil
	}
	return res, nil
}

// each calls fn(i) for i in [0, n) on workers goroutines, until ctx ends.
func each(ctx context.Context, n, workers int, fn func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// connect opens a device's MQTT connection over TLS with its certificate:
// CONNECT (MQTT 3.1.1, clean session, client id and username the device
// id, keep-alive 10 minutes) and a successful CONNACK.
func connect(ctx context.Context, addr string, id *device.Identity) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d := tls.Dialer{Config: id.TLSConfig("127.0.0.1")}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := mqttload.Connect(c, string(id.ID), 600); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// alive reports whether c is still open: a read that times out at once
// finds nothing to read (an open connection), EOF a closed one.
func alive(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rss is a process's resident set size in bytes, 0 when it cannot be read.
func rss(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// shorten is an error's kind, without the addresses that make each
// one's text different.
func shorten(err error) string {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by the platform (EOF)"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EMFILE):
		return "too many open files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port left"
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return "timed out"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// enroll creates device i of product and enrolls it with a fresh P-256
// key, over the API.
func enroll(ctx context.Context, api *opapi.Client, product iotpay.ProductID, i int) (*device.Identity, error) {
	var created struct {
		Device struct{ ID iotpay.DeviceID }
		Token  string `json:"enrollment_token"`
	}
	if err := api.Do(ctx, "POST", "/v1/devices", "", map[string]any{"product": product, "name": "conns-" + strconv.Itoa(i)}, &created); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	en, err := device.Enroll(ctx, api.HTTP, api.Base, created.Device.ID, created.Token, key)
	if err != nil {
		return nil, err
	}
	return en.Identity(key)
}
