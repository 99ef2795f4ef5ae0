// Package edge is the transport of a device behind an iotpay-edge gateway
// (edge/gateway): its requests travel as wire.Frames in CoAP POST /f, over
// DTLS with a pre-shared key or the device's certificate, or over plain
// UDP when they are protected end to end (signed or sealed), in blocks
// sized for the link (RFC 7959).
// Each block is a confirmable request of its own (block.go), so a block
// lost on the link is retransmitted alone; a frame is sent again, with a
// new counter, only when one of its blocks got no answer at all.
//
// Each frame carries the device's frame counter, which the gateway wants
// strictly increasing: it is saved (FrameCounter) before every frame, so it
// survives the device's reboots. The gateway stores a message before it
// answers; if the platform's answer is not there yet, the device polls
// for it (Exchange does; a sleepy device calls Poll when it wakes).
package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/atomicfile"
	"github.com/iotpay/iotpay/internal/devcert"
	"github.com/iotpay/iotpay/wire"
)

// Defaults and bounds.
const (
	// DefaultTimeout bounds one round of one CoAP request (a block and
	// its retransmissions), and the DTLS handshake; the request carrying
	// a frame's last block waits for the gateway's answer wait (2 s), so
	// it must exceed it.
	DefaultTimeout = 10 * time.Second
	// DefaultAttempts is how many times Exchange sends one request, each
	// time in a new frame.
	DefaultAttempts = 3
	attemptsMax     = 20
	// DefaultBlockSize fits a 242-byte link budget (edge/gateway.BlockSize).
	DefaultBlockSize = 128
	// DefaultAckTimeout is CoAP's ACK_TIMEOUT (RFC 7252 §4.8).
	DefaultAckTimeout = 2 * time.Second
	// maxRetransmit is CoAP's MAX_RETRANSMIT.
	maxRetransmit = 4
	// pollFirst and pollMax bound the back-off between two polls.
	pollFirst = 200 * time.Millisecond
	pollMax   = 5 * time.Second
	// FramePath is the gateway's frame resource.
	FramePath = "/f"
)

// ErrBusy is matched by a *BusyError.
var ErrBusy = errors.New("edge: gateway busy")

// ErrQueued is returned by Exchange when it gave up waiting (ctx ended or
// the attempts ran out) while its message was stored at the gateway: the
// answer will come to a later Poll.
var ErrQueued = iotpay.Errorf(iotpay.EUNAVAILABLE, "edge: message stored at the gateway, answer not yet back")

// BusyError says the gateway's store is full: nothing was stored; try
// again after Wait. It matches ErrBusy and is an EUNAVAILABLE error.
type BusyError struct {
	Wait time.Duration
}

// Error says how long to wait.
func (e *BusyError) Error() string { return fmt.Sprintf("edge: gateway busy, retry in %v", e.Wait) }

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Unwrap gives the error its iotpay code.
func (e *BusyError) Unwrap() error { return iotpay.Errorf(iotpay.EUNAVAILABLE, "%s", e.Error()) }

// FrameCounter keeps the device's frame counter across reboots.
type FrameCounter interface {
	// Load returns the last counter saved, 0 if none.
	Load() (uint32, error)
	// Save keeps n durably before the frame carrying it is sent.
	Save(n uint32) error
}

// FileCounter is a FrameCounter in a file (4 bytes big-endian), replaced
// atomically.
type FileCounter struct {
	Path string
}

// Load reads the counter; a missing file is 0.
func (c FileCounter) Load() (uint32, error) {
	b, err := os.ReadFile(c.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, iotpay.Wrap(iotpay.EUNAVAILABLE, "edge: cannot read the frame counter", err)
	case len(b) != 4:
		return 0, iotpay.Errorf(iotpay.EINTERNAL, "edge: frame counter file %s is damaged", c.Path)
	}
	return binary.BigEndian.Uint32(b), nil
}

// Save writes the counter.
func (c FileCounter) Save(n uint32) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	if err := atomicfile.Write(c.Path, b[:], 0o600); err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "edge: cannot save the frame counter", err)
	}
	return nil
}

// Config configures a Transport.
//
// At most one of PSK and TLS is set: with either the transport speaks
// DTLS, without both plain UDP.
type Config struct {
	Addr string // the gateway's host:port: its DTLS port with a PSK or TLS, its plain port otherwise
	// PSK is the device's pre-shared key with the gateway (its identity is
	// DeviceID); nil sends over plain UDP, for end-to-end protected
	// envelopes only, unless TLS is set.
	PSK []byte
	// TLS holds the device's certificate of the platform CA, its URI SAN
	// naming DeviceID (e.g. device.Identity.TLSConfig): Certificates[0],
	// whose PrivateKey is a crypto.Signer of a P-256 key, so that it may
	// live in a keystore. Its RootCAs and ServerName are not used: the
	// gateway's certificate is self-signed, and not verified unless
	// pinned (GatewayCertSHA256).
	TLS *tls.Config
	// GatewayCertSHA256, if set, pins the gateway's certificate (TLS
	// only): the handshake fails unless the SHA-256 of the certificate the
	// gateway shows is this (iotpay-edge prints it). If not set the
	// gateway's certificate is not verified at all. That is sound: the
	// device does not need to trust its gateway, since what it sends is
	// signed or sealed for the platform and every answer is signed by the
	// platform and checked by the device; a false gateway can drop
	// messages, as a lossy link can, but not forge or read them. Pinning
	// keeps the device's traffic from going to a gateway it does not know.
	GatewayCertSHA256 []byte
	DeviceID          iotpay.DeviceID
	FCnt              FrameCounter
	// Timeout bounds one round of a CoAP request: a block and its
	// retransmissions (a block has up to three rounds); default
	// DefaultTimeout.
	Timeout time.Duration
	// Attempts is how many times Exchange sends a request, each time in a
	// new frame with a new counter (the platform is idempotent on the
	// envelope); default DefaultAttempts.
	Attempts int
	// PacketConn, if set, carries the traffic instead of a new UDP
	// socket; the transport owns it and closes it.
	PacketConn net.PacketConn
	// BlockSize is the block-wise size, 16..1024, a power of two: the
	// gateway's (edge/gateway.BlockSize of the link budget). Default
	// DefaultBlockSize. A size, not an SZX, so that the zero value is a
	// default and not 16-byte blocks.
	BlockSize int
	// AckTimeout is CoAP's ACK_TIMEOUT; default DefaultAckTimeout.
	AckTimeout time.Duration
}

// Transport is a device's channel to its gateway. Exchange and Poll serve
// one caller at a time.
type Transport struct {
	cfg    Config
	device [16]byte
	conn   *udpclient.Conn
	stop   chan struct{} // ends the periodic runner
	szx    blockwise.SZX // of BlockSize
	// roundWait bounds one round of a request's retransmissions.
	roundWait time.Duration
	// lostRounds and staleAnswers count, for tests, the rounds of a
	// request that got no answer and the late answers to earlier blocks.
	lostRounds, staleAnswers atomic.Uint64

	closeOnce sync.Once

	mu   sync.Mutex
	fcnt uint32 // the last counter saved
}

// Dial opens the channel: a DTLS handshake with a PSK or a certificate, a
// UDP socket without.
func Dial(ctx context.Context, cfg Config) (*Transport, error) {
	switch {
	case cfg.Addr == "":
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: no gateway address")
	case cfg.FCnt == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: no frame counter")
	case cfg.Timeout < 0 || cfg.AckTimeout < 0 || cfg.Attempts < 0 || cfg.Attempts > attemptsMax:
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: negative timeout, or attempts outside 0..%d", attemptsMax)
	case cfg.BlockSize != 0 && (cfg.BlockSize < 16 || cfg.BlockSize > 1024 || cfg.BlockSize&(cfg.BlockSize-1) != 0):
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: block size %d is not a power of two in 16..1024", cfg.BlockSize)
	case cfg.PSK != nil && cfg.TLS != nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: both a PSK and a certificate")
	case cfg.TLS != nil && (len(cfg.TLS.Certificates) == 0 || cfg.TLS.Certificates[0].PrivateKey == nil):
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: TLS without a device certificate and key")
	case cfg.GatewayCertSHA256 != nil && (cfg.TLS == nil || len(cfg.GatewayCertSHA256) != sha256.Size):
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: a gateway pin needs TLS and %d bytes", sha256.Size)
	}
	device, err := iotpay.IDBytes(iotpay.PrefixDevice, string(cfg.DeviceID))
	if err != nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: invalid device id %q", cfg.DeviceID)
	}
	if cfg.TLS != nil && !certNames(cfg.TLS.Certificates[0], cfg.DeviceID) {
		// The gateway would refuse every frame: say so now.
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: the certificate does not name device %s", cfg.DeviceID)
	}
	cfg.Timeout = cmpOr(cfg.Timeout, DefaultTimeout)
	cfg.AckTimeout = cmpOr(cfg.AckTimeout, DefaultAckTimeout)
	cfg.Attempts = cmpOr(cfg.Attempts, DefaultAttempts)
	cfg.BlockSize = cmpOr(cfg.BlockSize, DefaultBlockSize)
	fcnt, err := cfg.FCnt.Load()
	if err != nil {
		return nil, err
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "edge: bad gateway address", err)
	}
	pc := cfg.PacketConn
	if pc == nil {
		udpc, err := net.ListenUDP("udp", nil)
		if err != nil {
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "edge: cannot open a UDP socket", err)
		}
		pc = udpc
	}
	szx := blockwise.SZX16
	for 16<<szx < cfg.BlockSize {
		szx++
	}
	// go-coap retransmits a confirmable message when its periodic runner
	// ticks, every 4 s by default: a tick of a quarter of ACK_TIMEOUT keeps
	// the retransmissions near RFC 7252's schedule.
	stop := make(chan struct{})
	tick := min(max(cfg.AckTimeout/4, 10*time.Millisecond), time.Second)
	opts := []udp.Option{
		options.WithPeriodicRunner(periodic.New(stop, tick)),
		options.WithBlockwise(false, szx, cfg.Timeout), // block.go does it
		options.WithMaxMessageSize(wire.FrameBytesMax + 1024),
		options.WithTransmission(1, cfg.AckTimeout, maxRetransmit),
		options.WithCloseSocket(),
		options.WithErrors(func(error) {}), // go-coap's default prints; Exchange returns what matters
	}
	t := &Transport{cfg: cfg, device: device, fcnt: fcnt, stop: stop, szx: szx,
		roundWait: roundWait(cfg.AckTimeout, cfg.Timeout)}
	if cfg.PSK == nil && cfg.TLS == nil {
		t.conn = plainClient(&peerConn{PacketConn: pc, peer: raddr}, opts...)
		return t, nil
	}
	dc, err := piondtls.ClientWithOptions(pc, raddr, dtlsOptions(cfg)...)
	if err != nil {
		close(stop)
		pc.Close()
		return nil, iotpay.Wrap(iotpay.EINVALID, "edge: DTLS configuration", err)
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := dc.HandshakeContext(hctx); err != nil {
		close(stop)
		dc.Close()
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "edge: DTLS handshake failed", err)
	}
	t.conn = coapdtls.Client(dc, opts...)
	return t, nil
}

// dtlsOptions are cfg's DTLS client options, with a PSK or a certificate.
func dtlsOptions(cfg Config) []piondtls.ClientOption {
	opts := []piondtls.ClientOption{
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
		// The device sends the gateway's connection id but asks none of
		// its own: the gateway's address does not change.
		piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()),
	}
	if cfg.PSK != nil {
		psk := bytes.Clone(cfg.PSK)
		return append(opts,
			piondtls.WithPSK(func([]byte) ([]byte, error) { return psk, nil }),
			piondtls.WithPSKIdentityHint([]byte(cfg.DeviceID)),
			piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256))
	}
	// pion takes tls.Certificates as they are and signs through
	// PrivateKey.(crypto.Signer): a key in a keystore works.
	opts = append(opts,
		piondtls.WithCertificates(cfg.TLS.Certificates...),
		piondtls.WithCipherSuites(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
		// pion still checks that the gateway holds its certificate's key
		// (the ServerKeyExchange signature); only the chain is skipped.
		piondtls.WithInsecureSkipVerify(true))
	if pin := bytes.Clone(cfg.GatewayCertSHA256); pin != nil {
		opts = append(opts, piondtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errPinMismatch
			}
			sum := sha256.Sum256(raw[0])
			if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
				return errPinMismatch
			}
			return nil
		}))
	}
	return opts
}

// certNames says whether cert's leaf names device in a URI SAN.
func certNames(cert tls.Certificate, device iotpay.DeviceID) bool {
	leaf := cert.Leaf
	if leaf == nil && len(cert.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	if leaf == nil {
		return false
	}
	id, ok := devcert.DeviceID(leaf)
	return ok && id == device
}

// errPinMismatch fails a handshake with a gateway whose certificate is not
// the pinned one.
var errPinMismatch = errors.New("edge: the gateway's certificate is not the pinned one")

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Exchange sends request to the platform through the gateway and returns
// the first answer for which match is true. A FrameAnswer that matches
// ends it; a FrameQueued (or an answer to something else) starts polling
// with back-off; if no answer came within two Timeouts, or the exchange
// failed, the request is sent again in a new frame, up to Attempts times.
// It returns a *BusyError (ErrBusy) if the gateway's store is full,
// EREPLAY if the gateway refused the frame counter, and ErrQueued if it
// gave up while the message was stored at the gateway.
func (t *Transport) Exchange(ctx context.Context, request []byte, match func([]byte) bool) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var last error
	queued := false
	for range t.cfg.Attempts {
		f, err := t.send(ctx, wire.FrameMessage, request)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE {
				return nil, err
			}
			last = err
			continue
		}
		switch f.Kind {
		case wire.FrameAnswer:
			if match(f.Body) {
				return f.Body, nil
			}
		case wire.FrameQueued:
		case wire.FrameBusy:
			return nil, &BusyError{Wait: time.Duration(f.Wait) * time.Second}
		case wire.FrameRefused:
			return nil, refused(f)
		default:
			return nil, iotpay.Errorf(iotpay.EINVALID, "edge: unexpected frame kind %d", f.Kind)
		}
		queued = true
		answer, err := t.pollFor(ctx, match, 2*t.cfg.Timeout)
		if err == nil {
			return answer, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	if queued {
		return nil, ErrQueued
	}
	if last == nil {
		last = iotpay.Wrap(iotpay.EUNAVAILABLE, "edge: no answer", ctx.Err())
	}
	return nil, last
}

// pollFor polls with back-off for an answer that matches, for at most
// window; answers that do not match are dropped.
func (t *Transport) pollFor(ctx context.Context, match func([]byte) bool, window time.Duration) ([]byte, error) {
	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	backoff := pollFirst
	for {
		f, err := t.send(wctx, wire.FramePoll, nil)
		switch {
		case err == nil && f.Kind == wire.FrameAnswer:
			if match(f.Body) {
				return f.Body, nil
			}
			continue // more may wait: ask again at once
		case err == nil && f.Kind == wire.FrameRefused:
			return nil, refused(f)
		case err != nil && iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE:
			return nil, err
		}
		select {
		case <-wctx.Done():
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "edge: no answer yet", wctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, pollMax)
	}
}

// Poll asks the gateway for the oldest answer waiting for the device: its
// body, or nil if none waits. A sleepy device calls it when it wakes,
// until it returns nil.
func (t *Transport) Poll(ctx context.Context) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, err := t.send(ctx, wire.FramePoll, nil)
	switch {
	case err != nil:
		return nil, err
	case f.Kind == wire.FrameAnswer:
		return f.Body, nil
	case f.Kind == wire.FrameNone:
		return nil, nil
	case f.Kind == wire.FrameRefused:
		return nil, refused(f)
	}
	return nil, iotpay.Errorf(iotpay.EINVALID, "edge: unexpected frame kind %d", f.Kind)
}

// refused turns a FrameRefused into an error: EREPLAY for a counter.
func refused(f *wire.Frame) error {
	code := iotpay.EUNAUTHORIZED
	if bytes.Contains(f.Body, []byte("counter")) {
		code = iotpay.EREPLAY
	}
	return iotpay.Errorf(code, "edge: gateway refused the frame: %s", f.Body)
}

// send saves the next frame counter, posts one frame and reads the
// gateway's frame for this device.
func (t *Transport) send(ctx context.Context, kind wire.FrameKind, body []byte) (*wire.Frame, error) {
	if t.fcnt == math.MaxUint32 {
		return nil, iotpay.Errorf(iotpay.ECONFLICT, "edge: frame counter exhausted")
	}
	n := t.fcnt + 1
	if err := t.cfg.FCnt.Save(n); err != nil {
		return nil, err
	}
	t.fcnt = n
	req, err := wire.EncodeFrame(&wire.Frame{Kind: kind, Device: t.device[:], FCnt: n, Body: body})
	if err != nil {
		return nil, err
	}
	code, b, err := t.post(ctx, req)
	switch {
	case err != nil:
		return nil, err
	case code != codes.Changed:
		return nil, refusal(code)
	case len(b) == 0:
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: empty answer")
	}
	f, err := wire.ParseFrame(b)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(f.Device, t.device[:]) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "edge: answer for another device")
	}
	return f, nil
}

// refusal turns the gateway's CoAP refusal into an error.
func refusal(c codes.Code) error {
	code := iotpay.EINVALID
	switch c {
	case codes.Unauthorized, codes.Forbidden:
		code = iotpay.EUNAUTHORIZED
	case codes.ServiceUnavailable, codes.InternalServerError, codes.RequestEntityIncomplete:
		// 4.08: the gateway lost the frame's blocks; a new frame may pass.
		code = iotpay.EUNAVAILABLE
	}
	return iotpay.Errorf(code, "edge: refused with %v", c)
}

// Close ends the channel and closes its socket.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() { close(t.stop) })
	return t.conn.Close()
}
