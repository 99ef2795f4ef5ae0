package gateway

// Certificates on the DTLS port.
//
// A device with a certificate of the platform CA (Config.ClientCAs) is
// verified at the handshake and known by the id in its URI SAN, as the
// platform knows it. The gateway answers with a server certificate of its
// own, which no CA vouches for: its platform-issued certificate is for
// client authentication only (ExtKeyUsageClientAuth), so it makes a
// self-signed P-256 one on first start and keeps it, key included, in
// DataDir/ServerCertFile (mode 0600).
//
// That is sound because a device does not need to trust the gateway: what
// it sends is signed or sealed for the platform, and every answer is
// signed by the platform and checked by the device, so a gateway in the
// middle can drop or delay messages but not forge or read them. DTLS here
// authenticates the device to the gateway (whose frame counters and store
// it spends) and hides the traffic on the link. A device that wants more
// pins the certificate's SHA-256 (device/edge Config.GatewayCertSHA256),
// which iotpay-edge prints at start and with 'iotpay-edge cert'.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"os"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/atomicfile"
	"github.com/iotpay/iotpay/internal/devcert"
)

// ServerCertFile is the file in Config.DataDir that keeps the DTLS port's
// self-signed certificate and its key, PEM, mode 0600.
const ServerCertFile = "dtls-server.pem"

// deviceURIPrefix prefixes the device id in a device certificate's URI
// SAN (internal/devcert, which platform/pki writes with).
const deviceURIPrefix = devcert.URIPrefix

// serverCertFileBytesMax bounds the server certificate file read.
const serverCertFileBytesMax = 16 << 10

// serverCertNotAfter is RFC 5280 §4.1.2.5's "no well-defined expiration
// date": devices pin the certificate or do not check it, so an expiry
// would only break them.
var serverCertNotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// LoadOrCreateServerCert returns the DTLS server certificate kept at path,
// making it on first use: a self-signed certificate for a fresh P-256 key
// (from rnd, crypto/rand when nil), valid from now on, written with its
// key in one file of mode 0600, so that the two cannot part.
func LoadOrCreateServerCert(path string, now time.Time, rnd io.Reader) (tls.Certificate, error) {
	cert, err := loadServerCert(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return cert, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return tls.Certificate{}, iotpay.Wrap(iotpay.EINTERNAL, "gateway: cannot make the DTLS key", err)
	}
	var sn [16]byte
	if _, err := io.ReadFull(rnd, sn[:]); err != nil {
		return tls.Certificate{}, iotpay.Wrap(iotpay.EINTERNAL, "gateway: cannot make a serial number", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(sn[:]),
		Subject:      pkix.Name{CommonName: PSKIdentityHint, Organization: []string{"iotpay"}},
		NotBefore:    now.Add(-time.Hour).UTC(),
		NotAfter:     serverCertNotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, iotpay.Wrap(iotpay.EINTERNAL, "gateway: cannot make the DTLS certificate", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, iotpay.Wrap(iotpay.EINTERNAL, "gateway: cannot encode the DTLS key", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	b = append(b, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})...)
	if err := atomicfile.WriteNew(path, b, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) { // made by another process in between
			return loadServerCert(path)
		}
		return tls.Certificate{}, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot write the DTLS certificate", err)
	}
	return loadServerCert(path)
}

// loadServerCert reads the certificate and key at path; an error matching
// fs.ErrNotExist if there is no file.
func loadServerCert(path string) (tls.Certificate, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, err
	}
	if err != nil {
		return tls.Certificate{}, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot read the DTLS certificate", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, serverCertFileBytesMax+1))
	switch {
	case err != nil:
		return tls.Certificate{}, iotpay.Wrap(iotpay.EUNAVAILABLE, "gateway: cannot read the DTLS certificate", err)
	case len(b) > serverCertFileBytesMax:
		return tls.Certificate{}, iotpay.Errorf(iotpay.EINVALID, "gateway: %s is over %d bytes", path, serverCertFileBytesMax)
	}
	cert, err := tls.X509KeyPair(b, b)
	if err != nil {
		return tls.Certificate{}, iotpay.Wrap(iotpay.EINVALID, "gateway: damaged DTLS certificate "+path, err)
	}
	return cert, nil
}

// CertSHA256 returns the SHA-256 of cert's leaf (its first DER
// certificate): what a device pins, and what
// 'openssl x509 -noout -fingerprint -sha256' shows.
func CertSHA256(cert tls.Certificate) []byte {
	if len(cert.Certificate) == 0 {
		return nil
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return sum[:]
}

// certDevice returns the device id a device certificate names in its URI
// SAN, as the platform reads it (internal/devcert).
func certDevice(cert *x509.Certificate) (iotpay.DeviceID, bool) { return devcert.DeviceID(cert) }
