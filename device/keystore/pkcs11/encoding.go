package pkcs11

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"fmt"
	"math/big"

	"github.com/iotpay/iotpay"
)

// parsePoint reads CKA_EC_POINT: an uncompressed point, DER-wrapped in an
// OCTET STRING as PKCS#11 says, or bare as some tokens return it.
func parsePoint(v []byte) (*ecdsa.PublicKey, error) {
	point := v
	var inner []byte
	if rest, err := asn1.Unmarshal(v, &inner); err == nil && len(rest) == 0 {
		point = inner
	}
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
}

// rawToDER turns CKM_ECDSA's r‖s into the ASN.1 SEQUENCE crypto.Signer
// returns.
func rawToDER(raw []byte) ([]byte, error) {
	if len(raw) != 64 {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "the token's signature is malformed",
			fmt.Errorf("CKM_ECDSA returned %d bytes for P-256", len(raw)))
	}
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
}
