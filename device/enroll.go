package device

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/emmansun/gmsm/smx509"
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// EnrollResponseBytesMax bounds the platform's enrollment answer.
const EnrollResponseBytesMax = 64 << 10

// Enrollment is the platform's answer to an enrollment: the device's
// certificate, the CA, the receipt key and the first challenge.
//
// A gm device's Certificate is for its SM2 key and chains to GMCA; its TLS
// channel uses TransportCertificate, for a P-256 key, from CA.
type Enrollment struct {
	Device      iotpay.DeviceID `json:"device"`
	Suite       string          `json:"suite"`
	Certificate string          `json:"certificate"`
	CA          string          `json:"ca"`
	PlatformKey string          `json:"platform_key"`
	Challenge   []byte          `json:"challenge"`

	GMCA                 string `json:"gm_ca,omitempty"`
	TransportCertificate string `json:"transport_certificate,omitempty"`
}

// enrollAttempts is how many times an enrollment is sent when its answer
// is lost.
const enrollAttempts = 3

// Enroll asks the platform at apiURL to certify the key behind signer for
// device id, proving the right to with the one-time token.
func Enroll(ctx context.Context, client *http.Client, apiURL string, id iotpay.DeviceID, token string, signer crypto.Signer) (*Enrollment, error) {
	return EnrollWith(ctx, client, apiURL, id, token, signer, nil)
}

// EnrollWith is Enroll for a device that also has a transport key (a gm
// device: signer is its SM2 key, transport a P-256 key for TLS).
func EnrollWith(ctx context.Context, client *http.Client, apiURL string, id iotpay.DeviceID, token string,
	signer, transport crypto.Signer) (*Enrollment, error) {
	body, err := EnrollRequest(id, token, signer, transport)
	if err != nil {
		return nil, err
	}
	// A lost answer is asked again with the same bytes and an
	// Idempotency-Key of them: the platform answers the enrollment it
	// made (a new CSR would be another request, and the token is spent).
	sum := sha256.Sum256(body)
	var resp *http.Response
	var b []byte
	for range enrollAttempts {
		req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/v1/enroll", bytes.NewReader(body))
		if rerr != nil {
			return nil, rerr
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "enroll-"+hex.EncodeToString(sum[:16]))
		resp, b, err = roundTrip(client, req)
		if (err == nil && resp.StatusCode != http.StatusServiceUnavailable) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, enrollError(b, resp.Status)
	}
	return ParseEnrollment(id, b)
}

// EnrollRequest is the body of an enrollment (POST /v1/enroll, and over
// MQTT): the device id, its token, and a CSR for each key (transport may
// be nil: only gm devices have one).
func EnrollRequest(id iotpay.DeviceID, token string, signer, transport crypto.Signer) ([]byte, error) {
	in := map[string]string{"device": string(id), "token": token}
	for name, k := range map[string]crypto.Signer{"csr": signer, "transport_csr": transport} {
		if k == nil {
			continue
		}
		csr, err := smx509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: string(id)}}, k)
		if err != nil {
			return nil, err
		}
		in[name] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	}
	return json.Marshal(in)
}

// ParseEnrollment reads the platform's answer to device id's enrollment:
// the enrollment, or an error object {"code", "message"}, which it returns
// as a typed error.
func ParseEnrollment(id iotpay.DeviceID, b []byte) (*Enrollment, error) {
	var probe struct {
		Code iotpay.Code `json:"code"`
	}
	if json.Unmarshal(b, &probe) == nil && probe.Code != "" {
		return nil, enrollError(b, "")
	}
	var en Enrollment
	if err := json.Unmarshal(b, &en); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed enrollment answer", err)
	}
	if en.Device != id {
		return nil, iotpay.Errorf(iotpay.EINVALID, "enrollment answer is for another device")
	}
	return &en, nil
}

// enrollError is the typed error an error object b says; fallback is the
// message when b is not one.
func enrollError(b []byte, fallback string) error {
	var e struct {
		Code    iotpay.Code `json:"code"`
		Message string      `json:"message"`
	}
	if json.Unmarshal(b, &e) != nil || e.Code == "" {
		e.Code, e.Message = iotpay.EUNAVAILABLE, fallback
	}
	return iotpay.Errorf(e.Code, "enrollment: %s", e.Message)
}

// roundTrip sends req (on http.DefaultClient when client is nil) and reads
// the answer, up to EnrollResponseBytesMax.
func roundTrip(client *http.Client, req *http.Request) (*http.Response, []byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "platform unreachable", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, EnrollResponseBytesMax))
	if err != nil {
		return nil, nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "platform unreachable", err)
	}
	return resp, b, nil
}

// Identity builds the device identity from an enrollment, checking that the
// certificate is for signer's key and chains to the CA.
func (en *Enrollment) Identity(signer crypto.Signer) (*Identity, error) {
	return en.IdentityWith(signer, nil)
}

// IdentityWith is Identity for a gm device, whose transport key
// authenticates its TLS channel; both certificates are checked.
func (en *Enrollment) IdentityWith(signer, transport crypto.Signer) (*Identity, error) {
	suite, err := wire.SuiteByName(en.Suite)
	if err != nil {
		return nil, err
	}
	ca, err := parseCertPEM([]byte(en.CA))
	if err != nil {
		return nil, err
	}
	root := ca
	if suite == wire.GM {
		if root, err = parseCertPEM([]byte(en.GMCA)); err != nil {
			return nil, err
		}
	}
	cert, err := certFor(en.Certificate, root, signer)
	if err != nil {
		return nil, err
	}
	id := &Identity{ID: en.Device, Suite: suite, Signer: signer, Cert: cert, CA: ca}
	if suite == wire.GM {
		if transport == nil {
			return nil, iotpay.Errorf(iotpay.EINVALID, "a gm device needs a transport key")
		}
		if id.TransportCert, err = certFor(en.TransportCertificate, ca, transport); err != nil {
			return nil, err
		}
		id.Transport = transport
	}
	blk, _ := pem.Decode([]byte(en.PlatformKey))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "malformed platform key")
	}
	if id.PlatformKey, err = smx509.ParsePKIXPublicKey(blk.Bytes); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed platform key", err)
	}
	return id, nil
}

// certFor parses a PEM certificate and checks that it chains to root, may
// authenticate a client and is for key's public key.
func certFor(certPEM string, root *x509.Certificate, key crypto.Signer) (*x509.Certificate, error) {
	cert, err := parseCertPEM([]byte(certPEM))
	if err != nil {
		return nil, err
	}
	pool := smx509.NewCertPool()
	pool.AddCert((*smx509.Certificate)(root))
	_, err = (*smx509.Certificate)(cert).Verify(smx509.VerifyOptions{Roots: pool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "certificate does not chain to the platform CA", err)
	}
	want, _ := smx509.MarshalPKIXPublicKey(key.Public())
	got, _ := smx509.MarshalPKIXPublicKey(cert.PublicKey)
	if want == nil || !bytes.Equal(want, got) {
		return nil, iotpay.Errorf(iotpay.EINVALID, "certificate is not for this device's key")
	}
	return cert, nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, iotpay.Errorf(iotpay.EINVALID, "no PEM certificate")
	}
	c, err := smx509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed certificate", err)
	}
	return c.ToX509(), nil
}

// Files in a device directory.
const (
	EnrollmentFile = "enrollment.json"
	StateFile      = "state.json"
	KeyFile        = "key.enc"
)

// SaveEnrollment writes the enrollment and the initial state (its first
// challenge) into dir.
func SaveEnrollment(dir string, en *Enrollment) error {
	if err := WriteEnrollment(dir, en); err != nil {
		return err
	}
	return FileState{Path: filepath.Join(dir, StateFile)}.Save(State{Challenge: en.Challenge})
}

// LoadEnrollment reads the enrollment saved in dir.
func LoadEnrollment(dir string) (*Enrollment, error) {
	b, err := os.ReadFile(filepath.Join(dir, EnrollmentFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("device: %s is not an enrolled device directory (no %s)", dir, EnrollmentFile)
	}
	if err != nil {
		return nil, err
	}
	var en Enrollment
	return &en, json.Unmarshal(b, &en)
}
