package registry

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/wire"
)

// Bounds and lifetimes.
const (
	EnrollTokenLifetime = 24 * time.Hour
	secretBytes         = 32
	NameLenMax          = 128
	// OfflineCountMax bounds a product's offline payment count.
	OfflineCountMax = 1000
	ListLimitMax    = 500
)

// Service is the registry's operations.
type Service struct {
	Store       Store
	CA          *pki.CA
	PlatformKey crypto.PublicKey // the receipt-signing key devices are given at enrollment
	// GMCA certifies the SM2 keys of gm devices and GMPlatformKey (SM2)
	// signs their receipts; without them no gm device can be created. A gm
	// device's TLS channel is still authenticated by CA (see Enroll).
	GMCA          *pki.CA
	GMPlatformKey crypto.PublicKey
	Now           func() time.Time
	Rand          io.Reader
	// OnDeviceChange, when set, is called once a device's status or key
	// changed (revoked, re-keyed), so that what keeps a copy (the payment
	// processor's verification keys) drops it.
	OnDeviceChange func(iotpay.DeviceID)
}

func (s *Service) changed(id iotpay.DeviceID, err error) {
	if err == nil && s.OnDeviceChange != nil {
		s.OnDeviceChange(id)
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

func (s *Service) secret() string {
	b := make([]byte, secretBytes)
	if _, err := io.ReadFull(s.rand(), b); err != nil {
		panic("registry: randomness source failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Bootstrap creates a tenant and its first operator API key, returned in
// clear once; only its hash is kept.
func (s *Service) Bootstrap(ctx context.Context, name string) (*Tenant, string, error) {
	now := s.now()
	t := &Tenant{ID: iotpay.TenantID(iotpay.NewID(iotpay.PrefixTenant, now, s.rand())), Name: name, Created: now}
	var key string
	err := s.Store.Update(ctx, func(tx Tx) error {
		if err := tx.CreateTenant(ctx, t); err != nil {
			return err
		}
		var err error
		key, err = s.newAPIKey(ctx, tx, t.ID)
		return err
	})
	return t, key, err
}

func (s *Service) newAPIKey(ctx context.Context, tx Tx, tenant iotpay.TenantID) (string, error) {
	now := s.now()
	id := iotpay.APIKeyID(iotpay.NewID(iotpay.PrefixAPIKey, now, s.rand()))
	secret := s.secret()
	if err := tx.CreateAPIKey(ctx, &APIKey{ID: id, Tenant: tenant, Hash: hashSecret(secret), Created: now}); err != nil {
		return "", err
	}
	return string(id) + "." + secret, nil
}

// Authenticate returns the tenant an operator API key belongs to. Every
// failure is the same vague error.
func (s *Service) Authenticate(ctx context.Context, key string) (iotpay.TenantID, error) {
	fail := iotpay.Errorf(iotpay.EUNAUTHORIZED, "invalid API key")
	id, secret, ok := strings.Cut(key, ".")
	if !ok || !iotpay.ValidID(iotpay.PrefixAPIKey, id) {
		return "", fail
	}
	var k *APIKey
	err := s.Store.View(ctx, func(tx Tx) error {
		var err error
		k, err = tx.APIKey(ctx, iotpay.APIKeyID(id))
		return err
	})
	if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
		return "", fail
	}
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare(k.Hash, hashSecret(secret)) != 1 {
		return "", fail
	}
	return k.Tenant, nil
}

// CreateProduct adds a product after checking its pricing.
func (s *Service) CreateProduct(ctx context.Context, p *Product) error {
	if err := checkName(p.Name); err != nil {
		return err
	}
	if err := p.Pricing.Validate(); err != nil {
		return err
	}
	if !iotpay.ValidID(iotpay.PrefixAccount, string(p.Merchant)) {
		return iotpay.Errorf(iotpay.EINVALID, "merchant_account must be an account id")
	}
	if p.Category != "" && (len(p.Category) != 4 || strings.Trim(p.Category, "0123456789") != "") {
		return iotpay.Errorf(iotpay.EINVALID, "category must be a 4-digit ISO 18245 merchant category code")
	}
	switch p.Kind {
	case "":
		p.Kind = ProductDevice
	case ProductDevice, ProductGateway:
	default:
		return iotpay.Errorf(iotpay.EINVALID, "kind must be device or gateway")
	}
	if o := p.Offline; o != nil && (o.MaxAmount <= 0 || o.MaxCount <= 0 || o.MaxCount > OfflineCountMax) {
		return iotpay.Errorf(iotpay.EINVALID, "offline limits need a positive max_amount and a max_count of 1 to %d", OfflineCountMax)
	}
	if p.Kind == ProductGateway && p.Offline != nil {
		return iotpay.Errorf(iotpay.EINVALID, "a gateway product does not pay, offline or not")
	}
	p.Created = s.now()
	p.ID = iotpay.ProductID(iotpay.NewID(iotpay.PrefixProduct, p.Created, s.rand()))
	return s.Store.Update(ctx, func(tx Tx) error { return tx.CreateProduct(ctx, p) })
}

// Validate checks that a pricing can price something.
func (p *Pricing) Validate() error {
	bad := func(format string, args ...any) error {
		return iotpay.Errorf(iotpay.EINVALID, "pricing: "+format, args...)
	}
	if !p.Currency.Valid() {
		return bad("unknown currency %q", p.Currency)
	}
	switch p.Mode {
	case PriceFixed:
		if p.PriceMinor <= 0 {
			return bad("fixed pricing needs a positive price_minor")
		}
	case PriceMetered:
		if p.PriceMinor <= 0 || p.PerUnits <= 0 || p.Unit == "" || len(p.Unit) > wire.TextLenMax {
			return bad("metered pricing needs price_minor, unit and per_units")
		}
	case PriceAmount:
	default:
		return bad("mode must be fixed, metered or amount")
	}
	if len(p.Event) > wire.TextLenMax {
		return bad("event name too long")
	}
	return nil
}

func checkName(n string) error {
	if n == "" || len(n) > NameLenMax {
		return iotpay.Errorf(iotpay.EINVALID, "name must be 1 to %d bytes", NameLenMax)
	}
	return nil
}

// CreateDevice registers a device of a product, bound for good to a crypto
// suite ("intl", the default when empty, or "gm"), and returns its one-time
// enrollment token in clear.
func (s *Service) CreateDevice(ctx context.Context, tenant iotpay.TenantID, product iotpay.ProductID, name, suite string) (*Device, string, error) {
	if err := checkName(name); err != nil {
		return nil, "", err
	}
	ws, err := wire.SuiteByName(suite)
	if err != nil {
		return nil, "", err
	}
	if ws == wire.GM && (s.GMCA == nil || s.GMPlatformKey == nil) {
		return nil, "", iotpay.Errorf(iotpay.EINVALID, "this platform has no gm suite configured")
	}
	now := s.now()
	token := s.secret()
	d := &Device{
		ID:           iotpay.DeviceID(iotpay.NewID(iotpay.PrefixDevice, now, s.rand())),
		Tenant:       tenant,
		Product:      product,
		Name:         name,
		Status:       DevicePending,
		Suite:        ws.Name(),
		Created:      now,
		TokenHash:    hashSecret(token),
		TokenExpires: now.Add(EnrollTokenLifetime),
	}
	err = s.Store.Update(ctx, func(tx Tx) error {
		if _, err := tx.Product(ctx, tenant, product); err != nil {
			return err
		}
		return tx.CreateDevice(ctx, d)
	})
	if err != nil {
		return nil, "", err
	}
	return d, token, nil
}

// Enrollment is what a device receives when it enrolls: its certificate,
// the CA to trust the platform with, the key that signs its receipts, and
// the challenge its first request must echo.
//
// A gm device holds two keys: its SM2 key, certified by the gm CA
// (Certificate, chaining to GMCA), signs its requests, and a P-256
// transport key, certified by the platform CA for the same device id
// (TransportCertificate), authenticates its TLS channel, since TLS with SM2
// (TLCP) is not spoken. The payment itself — request signature, receipt
// signature, certificate of the signing key — is all SM2.
type Enrollment struct {
	Device      iotpay.DeviceID `json:"device"`
	Suite       string          `json:"suite"`
	Certificate string          `json:"certificate"`  // PEM
	CA          string          `json:"ca"`           // PEM, the platform CA: TLS trust anchor
	PlatformKey string          `json:"platform_key"` // PEM public key
	Challenge   []byte          `json:"challenge"`
	// gm devices only
	GMCA                 string `json:"gm_ca,omitempty"`                 // PEM
	TransportCertificate string `json:"transport_certificate,omitempty"` // PEM
}

// Enroll certifies the key in csr for a pending device holding a valid
// one-time token; a gm device also sends transportCSR, for a P-256 key.
// Any failure of the token is the same vague error to the caller.
func (s *Service) Enroll(ctx context.Context, id iotpay.DeviceID, token string, csr, transportCSR []byte) (*Enrollment, error) {
	fail := iotpay.Errorf(iotpay.EUNAUTHORIZED, "enrollment refused")
	if !iotpay.ValidID(iotpay.PrefixDevice, string(id)) {
		return nil, fail
	}
	req, err := pki.ParseCSR(csr)
	if err != nil {
		return nil, err
	}
	var out *Enrollment
	err = s.Store.Update(ctx, func(tx Tx) error {
		d, err := tx.Device(ctx, id)
		if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
			return fail
		}
		if err != nil {
			return err
		}
		now := s.now()
		if d.Status != DevicePending || len(d.TokenHash) == 0 || now.After(d.TokenExpires) ||
			subtle.ConstantTimeCompare(d.TokenHash, hashSecret(token)) != 1 {
			return fail
		}
		ca, platformKey := s.CA, s.PlatformKey
		var transport *x509.Certificate
		if d.Suite == wire.SuiteGM {
			ca, platformKey = s.GMCA, s.GMPlatformKey
			if ca == nil || platformKey == nil {
				return iotpay.Errorf(iotpay.EINVALID, "this platform has no gm suite configured")
			}
			if len(transportCSR) == 0 {
				return iotpay.Errorf(iotpay.EINVALID, "a gm device needs a transport_csr for a P-256 key")
			}
			if transport, err = s.CA.SignDeviceCSR(transportCSR, d.ID, d.Tenant); err != nil {
				return err
			}
		} else if len(transportCSR) != 0 {
			return iotpay.Errorf(iotpay.EINVALID, "only gm devices send a transport_csr")
		}
		cert, err := ca.SignDeviceCSR(csr, d.ID, d.Tenant)
		if err != nil {
			return err
		}
		pub, err := pki.MarshalPublicKey(req.PublicKey)
		if err != nil {
			return iotpay.Wrap(iotpay.EINVALID, "unsupported public key", err)
		}
		d.Status = DeviceActive
		d.PublicKey = pub
		d.CertSerial = cert.SerialNumber.Text(16)
		d.CertNotAfter = cert.NotAfter
		d.TokenHash, d.TokenExpires = nil, time.Time{}
		d.Challenge = s.Challenge()
		if err := tx.UpdateDevice(ctx, d); err != nil {
			return err
		}
		pk, err := pki.MarshalPublicKey(platformKey)
		if err != nil {
			return err
		}
		out = &Enrollment{
			Device:      d.ID,
			Suite:       d.Suite,
			Certificate: string(pki.EncodeCertPEM(cert)),
			CA:          string(pki.EncodeCertPEM(s.CA.Cert)),
			PlatformKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk})),
			Challenge:   d.Challenge,
		}
		if transport != nil {
			out.GMCA = string(pki.EncodeCertPEM(s.GMCA.Cert))
			out.TransportCertificate = string(pki.EncodeCertPEM(transport))
		}
		return nil
	})
	return out, err
}

// CheckEnrollment says whether device id may enroll with token now
// (pending, token valid and unexpired) without consuming the token: a
// transport checks it before it lets a device send its CSR (MQTT's
// CONNECT). Any failure is the same vague error to the caller.
func (s *Service) CheckEnrollment(ctx context.Context, id iotpay.DeviceID, token string) error {
	fail := iotpay.Errorf(iotpay.EUNAUTHORIZED, "enrollment refused")
	if !iotpay.ValidID(iotpay.PrefixDevice, string(id)) {
		return fail
	}
	var d *Device
	err := s.Store.View(ctx, func(tx Tx) error {
		var err error
		d, err = tx.Device(ctx, id)
		return err
	})
	if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
		return fail
	}
	if err != nil {
		return err
	}
	if d.Status != DevicePending || len(d.TokenHash) == 0 || s.now().After(d.TokenExpires) ||
		subtle.ConstantTimeCompare(d.TokenHash, hashSecret(token)) != 1 {
		return fail
	}
	return nil
}

// Challenge returns a fresh unpredictable challenge.
func (s *Service) Challenge() []byte {
	c := make([]byte, wire.ChallengeBytes)
	if _, err := io.ReadFull(s.rand(), c); err != nil {
		panic("registry: randomness source failed: " + err.Error())
	}
	return c
}

// Revoke refuses a device from its next message on.
func (s *Service) Revoke(ctx context.Context, tenant iotpay.TenantID, id iotpay.DeviceID) (*Device, error) {
	var d *Device
	err := s.Store.Update(ctx, func(tx Tx) error {
		var err error
		d, err = s.tenantDevice(ctx, tx, tenant, id)
		if err != nil {
			return err
		}
		d.Status = DeviceRevoked
		return tx.UpdateDevice(ctx, d)
	})
	s.changed(id, err)
	return d, err
}

// Device returns a tenant's device.
func (s *Service) Device(ctx context.Context, tenant iotpay.TenantID, id iotpay.DeviceID) (*Device, error) {
	var d *Device
	err := s.Store.View(ctx, func(tx Tx) error {
		var err error
		d, err = s.tenantDevice(ctx, tx, tenant, id)
		return err
	})
	return d, err
}

// Devices lists a tenant's devices by id, after a cursor.
func (s *Service) Devices(ctx context.Context, tenant iotpay.TenantID, after iotpay.DeviceID, limit int) ([]*Device, error) {
	if limit <= 0 || limit > ListLimitMax {
		limit = ListLimitMax
	}
	var ds []*Device
	err := s.Store.View(ctx, func(tx Tx) error {
		var err error
		ds, err = tx.Devices(ctx, tenant, after, limit)
		return err
	})
	return ds, err
}

// Product returns a tenant's product.
func (s *Service) Product(ctx context.Context, tenant iotpay.TenantID, id iotpay.ProductID) (*Product, error) {
	var p *Product
	err := s.Store.View(ctx, func(tx Tx) error {
		var err error
		p, err = tx.Product(ctx, tenant, id)
		return err
	})
	return p, err
}

func (s *Service) tenantDevice(ctx context.Context, tx Tx, tenant iotpay.TenantID, id iotpay.DeviceID) (*Device, error) {
	d, err := tx.Device(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.Tenant != tenant {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "device %s not found", id)
	}
	return d, nil
}

// CheckDevice says whether a device may connect: enrolled and not revoked.
func (s *Service) CheckDevice(ctx context.Context, id iotpay.DeviceID) error {
	var d *Device
	err := s.Store.View(ctx, func(tx Tx) error {
		var err error
		d, err = tx.Device(ctx, id)
		return err
	})
	if err != nil {
		return err
	}
	if d.Status != DeviceActive {
		return iotpay.Errorf(iotpay.EUNAUTHORIZED, "device %s is %s", id, d.Status)
	}
	return nil
}

// Reenroll certifies a new key, or the same one again, for an active
// device whose current certificate the transport has just verified (EST
// simplereenroll). The certificate is for the device's TLS key: an intl
// device's one key, whose public half the registry keeps to verify its
// requests (so a new key replaces it), or a gm device's P-256 transport key
// (its SM2 signing key is untouched). The CSR's subject, if it names one,
// must be the device. The previous certificate is not revoked: it stays
// valid until it expires, so a device switches to the new one when it has
// saved it, without downtime.
func (s *Service) Reenroll(ctx context.Context, id iotpay.DeviceID, csr []byte) (*x509.Certificate, error) {
	req, err := pki.ParseCSR(csr)
	if err != nil {
		return nil, err
	}
	if cn := req.Subject.CommonName; cn != "" && cn != string(id) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "certificate request names another device")
	}
	var cert *x509.Certificate
	err = s.Store.Update(ctx, func(tx Tx) error {
		d, err := tx.Device(ctx, id)
		if err != nil {
			return err
		}
		if d.Status != DeviceActive {
			return iotpay.Errorf(iotpay.EUNAUTHORIZED, "device %s is %s", id, d.Status)
		}
		if cert, err = s.CA.SignDeviceCSR(csr, d.ID, d.Tenant); err != nil {
			return err
		}
		if d.Suite == wire.SuiteGM {
			return nil // the transport key signs no request
		}
		if d.PublicKey, err = pki.MarshalPublicKey(req.PublicKey); err != nil {
			return iotpay.Wrap(iotpay.EINVALID, "unsupported public key", err)
		}
		d.CertSerial, d.CertNotAfter = cert.SerialNumber.Text(16), cert.NotAfter
		return tx.UpdateDevice(ctx, d)
	})
	s.changed(id, err)
	return cert, err
}
