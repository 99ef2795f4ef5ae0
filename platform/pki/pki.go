// Package pki is the platform's certificate authority: it certifies device
// keys from certificate signing requests (device id in a URI SAN), issues
// the platform's own server certificates, and reads identities back out of
// the certificates a TLS handshake verified.
//
// There is a CA per crypto suite: intl (P-256, ECDSA with SHA-256) and gm
// (SM2, SM2 with SM3, GB/T 32918). Certificates are made and read with
// gmsm's smx509, a fork of crypto/x509 that knows SM2 too; they are handed
// around as *x509.Certificate (smx509's ToX509), whose PublicKey is an
// *ecdsa.PublicKey on the P-256 or the SM2 curve.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/atomicfile"
	"github.com/iotpay/iotpay/internal/devcert"
)

// Lifetimes and bounds.
const (
	CALifetime     = 10 * 365 * 24 * time.Hour
	DeviceLifetime = 365 * 24 * time.Hour
	ServerLifetime = 365 * 24 * time.Hour
	CSRBytesMax    = 8192
	clockSkew      = 5 * time.Minute
	// DeviceURIPrefix prefixes the device id in a device certificate's URI SAN.
	DeviceURIPrefix = devcert.URIPrefix
)

// CA is the platform certificate authority.
type CA struct {
	Cert   *x509.Certificate
	Signer crypto.Signer
	Now    func() time.Time
	Rand   io.Reader
}

// Suite names, as wire's (pki does not import wire).
const (
	SuiteIntl = "intl"
	SuiteGM   = "gm"
)

// GenerateKey returns a fresh private key for suite: P-256 (intl) or SM2
// (gm).
func GenerateKey(suite string, r io.Reader) (crypto.Signer, error) {
	if r == nil {
		r = rand.Reader
	}
	switch suite {
	case SuiteIntl, "":
		return ecdsa.GenerateKey(elliptic.P256(), r)
	case SuiteGM:
		return sm2.GenerateKey(r)
	}
	return nil, iotpay.Errorf(iotpay.EINVALID, "unknown crypto suite %q", suite)
}

// NewCA creates a self-signed P-256 root.
func NewCA(name string, now time.Time, r io.Reader) (*CA, error) {
	return NewSuiteCA(SuiteIntl, name, now, r)
}

// NewSuiteCA creates a self-signed root of suite: P-256 or SM2.
func NewSuiteCA(suite, name string, now time.Time, r io.Reader) (*CA, error) {
	if r == nil {
		r = rand.Reader
	}
	key, err := GenerateKey(suite, r)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(r),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"iotpay"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := smx509.CreateCertificate(r, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Signer: key, Rand: r}, nil
}

func (ca *CA) now() time.Time {
	if ca.Now != nil {
		return ca.Now()
	}
	return time.Now()
}

func (ca *CA) rand() io.Reader {
	if ca.Rand != nil {
		return ca.Rand
	}
	return rand.Reader
}

// Pool returns a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Suite is the crypto suite of the CA's own key, which is the suite of
// every key it certifies.
func (ca *CA) Suite() string {
	if k, ok := ca.Cert.PublicKey.(*ecdsa.PublicKey); ok && k.Curve == sm2.P256() {
		return SuiteGM
	}
	return SuiteIntl
}

// SignDeviceCSR checks a PEM or DER certificate request for a key of the
// CA's suite (P-256 or SM2) and returns a client certificate for device,
// its id in a URI SAN.
func (ca *CA) SignDeviceCSR(csrBytes []byte, device iotpay.DeviceID, tenant iotpay.TenantID) (*x509.Certificate, error) {
	csr, err := ParseCSR(csrBytes)
	if err != nil {
		return nil, err
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	want := ca.Cert.PublicKey.(*ecdsa.PublicKey).Curve
	if !ok || pub.Curve != want {
		return nil, iotpay.Errorf(iotpay.EINVALID, "certificate request must be for a %s key", want.Params().Name)
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(ca.rand()),
		Subject:      pkix.Name{CommonName: string(device), OrganizationalUnit: []string{string(tenant)}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(DeviceLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{devcert.URI(device)},
	}
	return ca.issue(tmpl, pub)
}

// IssueServerCert returns a TLS server certificate for hosts (names or IP
// addresses) and its fresh key.
func (ca *CA) IssueServerCert(hosts []string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), ca.rand())
	if err != nil {
		return nil, nil, err
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(ca.rand()),
		Subject:      pkix.Name{CommonName: "iotpayd"},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(ServerLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	cert, err := ca.issue(tmpl, &key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	der, err := smx509.CreateCertificate(ca.rand(), tmpl, ca.Cert, pub, ca.Signer)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "cannot issue certificate", err)
	}
	return ParseCertificate(der)
}

// ParseCertificate decodes a DER certificate of either suite.
func ParseCertificate(der []byte) (*x509.Certificate, error) {
	c, err := smx509.ParseCertificate(der)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed certificate", err)
	}
	return c.ToX509(), nil
}

// Verify checks that cert chains to root and may authenticate a client.
// Unlike crypto/x509's, it verifies SM2 signatures too.
func Verify(cert, root *x509.Certificate, now time.Time) error {
	pool := smx509.NewCertPool()
	pool.AddCert((*smx509.Certificate)(root))
	_, err := (*smx509.Certificate)(cert).Verify(smx509.VerifyOptions{Roots: pool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return iotpay.Wrap(iotpay.EINVALID, "certificate does not chain to the platform CA", err)
	}
	return nil
}

// MarshalPublicKey returns the PKIX DER of a P-256 or SM2 public key.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	return smx509.MarshalPKIXPublicKey(pub)
}

// ParsePublicKey decodes the PKIX DER of a P-256 or SM2 public key.
func ParsePublicKey(der []byte) (crypto.PublicKey, error) {
	return smx509.ParsePKIXPublicKey(der)
}

// ParseCSR decodes a PEM or DER certificate request and checks its signature.
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	if len(b) > CSRBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "certificate request larger than %d bytes", CSRBytesMax)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE REQUEST" {
			return nil, iotpay.Errorf(iotpay.EINVALID, "PEM block is %q, want CERTIFICATE REQUEST", blk.Type)
		}
		b = blk.Bytes
	}
	csr, err := smx509.ParseCertificateRequest(b)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed certificate request", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "certificate request signature does not verify", err)
	}
	return csr.ToX509(), nil
}

// NewCSR returns a DER certificate request for the key behind signer, a
// P-256 or an SM2 key.
func NewCSR(signer crypto.Signer, commonName string) ([]byte, error) {
	return smx509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, signer)
}

// DeviceID returns the device id a device certificate names in its URI SAN.
func DeviceID(cert *x509.Certificate) (iotpay.DeviceID, error) {
	if id, ok := devcert.DeviceID(cert); ok {
		return id, nil
	}
	return "", iotpay.Errorf(iotpay.EUNAUTHORIZED, "certificate names no device")
}

func serial(r io.Reader) *big.Int {
	n, err := rand.Int(r, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("pki: randomness source failed: " + err.Error())
	}
	return n.Add(n, big.NewInt(1))
}

// EncodeCertPEM returns cert in PEM form.
func EncodeCertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ParseCertPEM decodes the first certificate in PEM data.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "no PEM certificate")
	}
	return ParseCertificate(blk.Bytes)
}

// EncodeKeyPEM returns an ECDSA or SM2 private key as PKCS#8 PEM.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := smx509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKeyPEM decodes a PKCS#8 PEM private key.
func ParseKeyPEM(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("pki: no PEM private key")
	}
	k, err := smx509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("pki: key cannot sign")
	}
	return s, nil
}

// LoadOrCreateCA loads ca.pem and ca-key.pem from dir, creating them (key
// mode 0600) on first use.
func LoadOrCreateCA(dir string, now time.Time) (*CA, bool, error) {
	return LoadOrCreateSuiteCA(dir, SuiteIntl, now)
}

// LoadOrCreateSuiteCA is LoadOrCreateCA for a suite: the gm CA is in
// gm-ca.pem and gm-ca-key.pem.
func LoadOrCreateSuiteCA(dir, suite string, now time.Time) (*CA, bool, error) {
	prefix, name := "", "iotpay platform CA"
	if suite == SuiteGM {
		prefix, name = "gm-", "iotpay platform SM2 CA"
	}
	certPath, keyPath := filepath.Join(dir, prefix+"ca.pem"), filepath.Join(dir, prefix+"ca-key.pem")
	cb, err := os.ReadFile(certPath)
	if errors.Is(err, os.ErrNotExist) {
		ca, err := NewSuiteCA(suite, name, now, nil)
		if err != nil {
			return nil, false, err
		}
		kp, err := EncodeKeyPEM(ca.Signer)
		if err != nil {
			return nil, false, err
		}
		if err := atomicfile.Write(keyPath, kp, 0o600); err != nil {
			return nil, false, err
		}
		if err := atomicfile.Write(certPath, EncodeCertPEM(ca.Cert), 0o644); err != nil {
			return nil, false, err
		}
		return ca, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	cert, err := ParseCertPEM(cb)
	if err != nil {
		return nil, false, fmt.Errorf("pki: %s: %w", certPath, err)
	}
	key, err := LoadKey(keyPath)
	if err != nil {
		return nil, false, err
	}
	return &CA{Cert: cert, Signer: key}, false, nil
}

// LoadOrCreateKey loads a PKCS#8 PEM key of suite (P-256 or SM2) from
// path, creating it with mode 0600 on first use.
func LoadOrCreateKey(path, suite string) (crypto.Signer, bool, error) {
	key, err := LoadKey(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := GenerateKey(suite, nil)
		if err != nil {
			return nil, false, err
		}
		kp, err := EncodeKeyPEM(k)
		if err != nil {
			return nil, false, err
		}
		return k, true, atomicfile.Write(path, kp, 0o600)
	}
	return key, false, err
}

// LoadKey reads a PKCS#8 PEM private key, refusing one readable by others.
func LoadKey(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("pki: %s is readable by group or others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	return k, nil
}

// KeyID returns a short stable identifier of a public key: the first 8
// bytes of the SHA-256 of its SubjectPublicKeyInfo.
func KeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := MarshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(der)
	return h[:8], nil
}
