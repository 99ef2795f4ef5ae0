// Package pkcs7 encodes and decodes the one PKCS#7 (CMS, RFC 5652) form
// EST uses to carry certificates: a degenerate "certs-only" SignedData, with
// no content, no digest algorithms and no signers (RFC 7030 §4.1.3, RFC
// 8551 §3.2.2).
//
// The decoder is strict: definite DER lengths, no trailing bytes, nothing
// but certificates, at most CertsMax of them.
package pkcs7

import (
	"encoding/asn1"
	"encoding/base64"
	"strings"

	"github.com/iotpay/iotpay"
)

// Bounds.
const (
	// CertsMax bounds the certificates in one bundle.
	CertsMax = 8
	// BytesMax bounds a bundle a peer sends.
	BytesMax = 64 << 10
)

var (
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
)

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue // [0] EXPLICIT SignedData
}

type encapContentInfo struct {
	ContentType asn1.ObjectIdentifier // id-data, no content
}

type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue // SET, empty
	EncapContent     encapContentInfo
	Certificates     asn1.RawValue // [0] IMPLICIT SET OF Certificate
	SignerInfos      asn1.RawValue // SET, empty
}

const classContext = asn1.ClassContextSpecific

func emptySet() asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true}
}

// EncodeCertsOnly returns the DER of a certs-only SignedData holding the
// DER certificates certs, in order.
func EncodeCertsOnly(certs ...[]byte) ([]byte, error) {
	if len(certs) == 0 || len(certs) > CertsMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "pkcs7: 1 to %d certificates", CertsMax)
	}
	var all []byte
	for _, c := range certs {
		all = append(all, c...)
	}
	sd, err := asn1.Marshal(signedData{
		Version:          1,
		DigestAlgorithms: emptySet(),
		EncapContent:     encapContentInfo{ContentType: oidData},
		Certificates:     asn1.RawValue{Class: classContext, Tag: 0, IsCompound: true, Bytes: all},
		SignerInfos:      emptySet(),
	})
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "pkcs7: cannot encode", err)
	}
	return asn1.Marshal(contentInfo{ContentType: oidSignedData,
		Content: asn1.RawValue{Class: classContext, Tag: 0, IsCompound: true, Bytes: sd}})
}

// ParseCertsOnly returns the DER certificates of a certs-only SignedData.
// The certificates themselves are not parsed: that is the caller's, who
// knows which suites it accepts.
func ParseCertsOnly(der []byte) ([][]byte, error) {
	bad := func(what string) error { return iotpay.Errorf(iotpay.EINVALID, "pkcs7: %s", what) }
	if len(der) > BytesMax {
		return nil, bad("too large")
	}
	var ci contentInfo
	if rest, err := asn1.Unmarshal(der, &ci); err != nil || len(rest) != 0 {
		return nil, bad("malformed ContentInfo")
	}
	if !ci.ContentType.Equal(oidSignedData) || !isContext0(ci.Content) {
		return nil, bad("not a SignedData")
	}
	var sd signedData
	if rest, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil || len(rest) != 0 {
		return nil, bad("malformed SignedData")
	}
	if sd.Version != 1 || !isEmptySet(sd.DigestAlgorithms) || !isEmptySet(sd.SignerInfos) ||
		!sd.EncapContent.ContentType.Equal(oidData) {
		return nil, bad("not a certs-only SignedData")
	}
	if !isContext0(sd.Certificates) {
		return nil, bad("no certificates")
	}
	var certs [][]byte
	for rest := sd.Certificates.Bytes; len(rest) > 0; {
		var c asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &c); err != nil || c.Class != asn1.ClassUniversal || c.Tag != asn1.TagSequence {
			return nil, bad("malformed certificate")
		}
		if len(certs) == CertsMax {
			return nil, bad("too many certificates")
		}
		certs = append(certs, c.FullBytes)
	}
	if len(certs) == 0 {
		return nil, bad("no certificates")
	}
	return certs, nil
}

func isContext0(v asn1.RawValue) bool {
	return v.Class == classContext && v.Tag == 0 && v.IsCompound
}

func isEmptySet(v asn1.RawValue) bool {
	return v.Class == asn1.ClassUniversal && v.Tag == asn1.TagSet && v.IsCompound && len(v.Bytes) == 0
}

// DecodeBase64 decodes an EST body: base64 (RFC 4648) with line breaks
// allowed, as OpenSSL writes it (RFC 7030 §4).
func DecodeBase64(b []byte) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, string(b))
	out, err := base64.StdEncoding.Strict().DecodeString(clean)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "body is not base64", err)
	}
	return out, nil
}
