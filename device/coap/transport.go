// Package coap is the device's CoAP transport: one DTLS 1.2 session to the
// platform, authenticated by the device's certificate or by its pre-shared
// key, on which each signed request is a confirmable POST /pay answered
// with the signed receipt.
//
// It is the only device package that imports the CoAP and DTLS libraries
// (go-coap, pion/dtls). The session asks for a connection id (RFC 9146),
// so it survives the device's address changing under a NAT.
package coap

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// Defaults and bounds.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultAttempts = 3
	// attemptsMax bounds Config.Attempts: each attempt resends.
	attemptsMax = 10
	// answerBytesMax bounds a receipt read from the platform.
	answerBytesMax = 4096
	// PayPath is the platform's pay resource.
	PayPath = "/pay"
)

// Config configures a Transport. Exactly one of TLS and PSK is set.
type Config struct {
	Addr string // host:port of the platform's CoAP/DTLS endpoint
	// TLS: the device's certificate (PrivateKey a crypto.Signer, e.g. in
	// a keystore), RootCAs and ServerName, as for MQTT.
	TLS *tls.Config
	// PSK is the device's pre-shared key; its identity is DeviceID.
	PSK      []byte
	DeviceID iotpay.DeviceID
	Timeout  time.Duration // per attempt; default 5s
	Attempts int           // default 3: on a timeout the SAME bytes are resent (the platform is idempotent)
	// PacketConn, if set, carries the session instead of a new UDP
	// socket; the transport owns it and closes it.
	PacketConn net.PacketConn
}

// Transport is a device's DTLS session. Exchange serves one caller at a time.
type Transport struct {
	conn     *udpclient.Conn
	timeout  time.Duration
	attempts int
	mu       sync.Mutex
}

// Dial resolves addr, handshakes DTLS 1.2 and returns the session.
func Dial(ctx context.Context, cfg Config) (*Transport, error) {
	switch {
	case cfg.Addr == "":
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: no platform address")
	case (cfg.TLS == nil) == (cfg.PSK == nil):
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: exactly one of a certificate and a PSK is needed")
	case !iotpay.ValidID(iotpay.PrefixDevice, string(cfg.DeviceID)):
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: invalid device id %q", cfg.DeviceID)
	case cfg.Timeout < 0 || cfg.Attempts < 0 || cfg.Attempts > attemptsMax:
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: timeout must not be negative and attempts within 0..%d", attemptsMax)
	}
	t := &Transport{timeout: cfg.Timeout, attempts: cfg.Attempts}
	if t.timeout == 0 {
		t.timeout = DefaultTimeout
	}
	if t.attempts == 0 {
		t.attempts = DefaultAttempts
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "coap: bad platform address", err)
	}
	pc := cfg.PacketConn
	if pc == nil {
		udp, err := net.ListenUDP("udp", nil)
		if err != nil {
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "coap: cannot open a UDP socket", err)
		}
		pc = udp
	}
	dc, err := piondtls.ClientWithOptions(pc, raddr, dtlsOptions(cfg)...)
	if err != nil {
		pc.Close()
		return nil, iotpay.Wrap(iotpay.EINVALID, "coap: DTLS configuration", err)
	}
	hctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	if err := dc.HandshakeContext(hctx); err != nil {
		dc.Close()
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "coap: DTLS handshake failed", err)
	}
	t.conn = coapdtls.Client(dc,
		options.WithBlockwise(true, blockwise.SZX1024, t.timeout),
		options.WithMaxMessageSize(answerBytesMax+1024),
		options.WithCloseSocket())
	return t, nil
}

// dtlsOptions are cfg's DTLS client options.
func dtlsOptions(cfg Config) []piondtls.ClientOption {
	opts := []piondtls.ClientOption{
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
		// The device sends the platform's connection id but asks none of
		// its own: the platform's address does not change.
		piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()),
	}
	if cfg.PSK != nil {
		psk := bytes.Clone(cfg.PSK)
		return append(opts,
			piondtls.WithPSK(func([]byte) ([]byte, error) { return psk, nil }),
			piondtls.WithPSKIdentityHint([]byte(cfg.DeviceID)),
			piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, piondtls.TLS_PSK_WITH_AES_128_CCM_8))
	}
	return append(opts,
		piondtls.WithCertificates(cfg.TLS.Certificates...),
		piondtls.WithRootCAs(cfg.TLS.RootCAs),
		piondtls.WithServerName(cfg.TLS.ServerName),
		piondtls.WithCipherSuites(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256))
}

// Exchange posts request to /pay and returns the first answer for which
// match is true, resending the same bytes on a timeout up to Attempts
// times. A refusal at the transport (a 4.xx or 5.xx) is returned as an
// error of the matching code.
func (t *Transport) Exchange(ctx context.Context, request []byte, match func([]byte) bool) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var last error
	for range t.attempts {
		answer, err := t.post(ctx, request)
		if err == nil {
			if match(answer) {
				return answer, nil
			}
			return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "coap: answer is not a receipt for the request")
		}
		if iotpay.ErrorCode(err) != iotpay.EUNAVAILABLE || ctx.Err() != nil {
			return nil, err
		}
		last = err
	}
	return nil, last
}

// post sends one POST /pay and reads its answer.
func (t *Transport) post(ctx context.Context, request []byte) ([]byte, error) {
	pctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	cf := message.AppCoseSign1
	if wire.IsEncrypt0(request) { // a session's sealed request
		cf = message.AppCoseEncrypt0
	}
	resp, err := t.conn.Post(pctx, PayPath, cf, bytes.NewReader(request))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "coap: no answer", err)
	}
	defer t.conn.ReleaseMessage(resp)
	if resp.Code() != codes.Changed {
		return nil, refusal(resp.Code())
	}
	body := resp.Body()
	if body == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: empty answer")
	}
	b, err := io.ReadAll(io.LimitReader(body, answerBytesMax+1))
	if err != nil || len(b) > answerBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "coap: unreadable or oversized answer")
	}
	return b, nil
}

// refusal turns the platform's refusal code into an error.
func refusal(c codes.Code) error {
	code := iotpay.EINVALID
	switch c {
	case codes.Unauthorized, codes.Forbidden:
		code = iotpay.EUNAUTHORIZED
	case codes.ServiceUnavailable, codes.InternalServerError:
		code = iotpay.EUNAVAILABLE
	}
	return iotpay.Errorf(code, "coap: refused with %d.%02d %v", c>>5, c&0x1f, c)
}

// Close ends the session.
func (t *Transport) Close() error {
	return t.conn.Close()
}
