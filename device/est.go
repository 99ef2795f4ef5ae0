package device

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"path/filepath"
	"time"

	"github.com/emmansun/gmsm/smx509"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/atomicfile"
	"github.com/iotpay/iotpay/internal/pkcs7"
)

// EST paths under the device endpoint's base URL (RFC 7030 §3.2.2).
const (
	estCACerts        = "/.well-known/est/cacerts"
	estSimpleEnroll   = "/.well-known/est/simpleenroll"
	estSimpleReenroll = "/.well-known/est/simplereenroll"
)

// ESTCACerts fetches the platform CA from the EST endpoint at baseURL
// (https://host:port). The caller decides how far to trust an answer
// fetched before it knows the CA (RFC 7030 §4.1.1: out of band).
func ESTCACerts(ctx context.Context, client *http.Client, baseURL string) ([]*x509.Certificate, error) {
	return estDo(ctx, client, http.MethodGet, baseURL+estCACerts, nil, nil)
}

// ESTEnroll certifies the key behind signer for device id, proving the right
// to with its one-time enrollment token (HTTP Basic: the device id and the
// token), and returns the certificate. Only intl devices enroll over EST.
func ESTEnroll(ctx context.Context, client *http.Client, baseURL string, id iotpay.DeviceID, token string, signer crypto.Signer) (*x509.Certificate, error) {
	return estEnroll(ctx, client, baseURL+estSimpleEnroll, id, signer, func(r *http.Request) { r.SetBasicAuth(string(id), token) })
}

// ESTReenroll asks for a new certificate for the key behind signer (the
// device's TLS key, the same or a new one), over a client that presents
// the device's current certificate. The current certificate stays valid
// until it expires.
func ESTReenroll(ctx context.Context, client *http.Client, baseURL string, id iotpay.DeviceID, signer crypto.Signer) (*x509.Certificate, error) {
	return estEnroll(ctx, client, baseURL+estSimpleReenroll, id, signer, nil)
}

func estEnroll(ctx context.Context, client *http.Client, url string, id iotpay.DeviceID, signer crypto.Signer, auth func(*http.Request)) (*x509.Certificate, error) {
	csr, err := smx509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: string(id)}}, signer)
	if err != nil {
		return nil, err
	}
	certs, err := estDo(ctx, client, http.MethodPost, url, []byte(base64.StdEncoding.EncodeToString(csr)), auth)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// estDo sends one EST request and decodes its certs-only answer.
func estDo(ctx context.Context, client *http.Client, method, url string, body []byte, auth func(*http.Request)) ([]*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "est: bad URL", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/pkcs10")
	}
	if auth != nil {
		auth(req)
	}
	resp, b, err := roundTrip(client, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, iotpay.Errorf(StatusCode(resp.StatusCode), "est: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	der, err := pkcs7.DecodeBase64(b)
	if err != nil {
		return nil, err
	}
	raws, err := pkcs7.ParseCertsOnly(der)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, len(raws))
	for i, raw := range raws {
		c, err := smx509.ParseCertificate(raw)
		if err != nil {
			return nil, iotpay.Wrap(iotpay.EINVALID, "est: malformed certificate", err)
		}
		certs[i] = c.ToX509()
	}
	return certs, nil
}

// StatusCode is the error code of an HTTP status the device endpoint
// answers with.
func StatusCode(status int) iotpay.Code {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return iotpay.EUNAUTHORIZED
	case status == http.StatusConflict:
		return iotpay.ECONFLICT
	case status >= 400 && status < 500:
		return iotpay.EINVALID
	case status == http.StatusInternalServerError:
		return iotpay.EINTERNAL
	}
	return iotpay.EUNAVAILABLE
}

// RenewalFraction is the part of a certificate's life after which the
// device should renew it: late enough not to churn, early enough that a
// device asleep for a while, or a platform down for a day, still renews
// before expiry.
const RenewalFraction = 2.0 / 3

// RenewalDue returns when cert should be renewed: after RenewalFraction of
// its validity has passed.
func RenewalDue(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(time.Duration(float64(life) * RenewalFraction))
}

// TLSCert is the certificate the identity presents on TLS channels, the one
// Rotate renews: an intl device's certificate, a gm device's transport
// certificate.
func (id *Identity) TLSCert() *x509.Certificate {
	if id.TransportCert != nil {
		return id.TransportCert
	}
	return id.Cert
}

// Rotate renews the device's TLS certificate over EST before it expires,
// for the same TLS key (an intl device's key, a gm device's transport
// key): see RotateTo.
func Rotate(ctx context.Context, client *http.Client, baseURL, dir string, en *Enrollment, id *Identity) (*Enrollment, *Identity, error) {
	key := id.Signer
	if id.Transport != nil {
		key = id.Transport
	}
	return RotateTo(ctx, client, baseURL, dir, en, id, key)
}

// RotateTo asks over EST (simplereenroll, on a client presenting the
// current certificate) for a certificate for key, the device's TLS key
// from now on; checks it (chains to the CA, is for key); writes it into en
// in dir atomically (dir empty: not saved); and returns the new Identity.
// The old certificate stays valid until it expires, so connections made
// with it go on working.
//
// For an intl device, key also signs its requests from the moment the
// platform issues the certificate: the caller keeps the new key in a
// keystore before calling, and if the answer is lost, calls again with
// the old certificate, which still authenticates. A gm device's key here
// is its transport key; its SM2 key does not change.
func RotateTo(ctx context.Context, client *http.Client, baseURL, dir string, en *Enrollment, id *Identity, key crypto.Signer) (*Enrollment, *Identity, error) {
	cert, err := ESTReenroll(ctx, client, baseURL, id.ID, key)
	if err != nil {
		return nil, nil, err
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	if _, err := certFor(certPEM, id.CA, key); err != nil {
		return nil, nil, err
	}
	next, nextID := *en, *id
	if id.Transport != nil {
		next.TransportCertificate, nextID.TransportCert, nextID.Transport = certPEM, cert, key
	} else {
		next.Certificate, nextID.Cert, nextID.Signer = certPEM, cert, key
	}
	if dir != "" {
		if err := WriteEnrollment(dir, &next); err != nil {
			return nil, nil, err
		}
	}
	return &next, &nextID, nil
}

// WriteEnrollment replaces the enrollment in dir atomically, leaving the
// device's state alone.
func WriteEnrollment(dir string, en *Enrollment) error {
	b, err := json.MarshalIndent(en, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, EnrollmentFile), b, 0o600)
}
