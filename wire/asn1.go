package wire

import (
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// parseECDSASig parses the ASN.1 SEQUENCE { r INTEGER, s INTEGER } that
// crypto.Signer implementations return for ECDSA and SM2.
func parseECDSASig(der []byte) (r, s *big.Int, ok bool) {
	r, s = new(big.Int), new(big.Int)
	var inner cryptobyte.String
	in := cryptobyte.String(der)
	if !in.ReadASN1(&inner, asn1.SEQUENCE) || !in.Empty() ||
		!inner.ReadASN1Integer(r) || !inner.ReadASN1Integer(s) || !inner.Empty() {
		return nil, nil, false
	}
	if r.Sign() <= 0 || s.Sign() <= 0 {
		return nil, nil, false
	}
	return r, s, true
}
