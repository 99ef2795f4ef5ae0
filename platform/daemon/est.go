package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/httpapi"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/platform/registry"
)

// estRegistry is the registry as the HTTPS device endpoint sees it, with
// EST enrollment made safe to retry: the one-time token's enrollment is
// kept (in the idempotency table, for httpapi.IdempotencyTTL — the
// token's own life), so a device that lost the answer and asks again with
// the same token for the same public key gets the same certificate; for
// another key it is refused as any wrong enrollment is. The answer is
// kept in the writer operation that enrolls, so a crash cannot separate
// them. (EST has no Idempotency-Key; the device's retry may carry a new
// CSR, whose signature differs, for the same key, so the key is what
// makes a request the same.)
type estRegistry struct {
	*registry.Service
	payments *payment.Engine[platform.Tx]
}

// estScope is the idempotency scope of a device's EST enrollment; no
// tenant id has a space in it.
func estScope(id iotpay.DeviceID) iotpay.TenantID { return iotpay.TenantID("est-enroll " + id) }

// Enroll is registry.Service.Enroll, once per token.
func (r estRegistry) Enroll(ctx context.Context, id iotpay.DeviceID, token string, csr, transportCSR []byte) (*registry.Enrollment, error) {
	req, err := pki.ParseCSR(csr)
	if err != nil {
		return nil, err
	}
	spki, err := pki.MarshalPublicKey(req.PublicKey)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "unsupported public key", err)
	}
	keyHash := sha256.Sum256(spki)
	tokenHash := sha256.Sum256([]byte(token)) // the token itself is never stored
	key := hex.EncodeToString(tokenHash[:])
	var en *registry.Enrollment
	err = r.payments.Do(ctx, func(b *ledger.Batch[platform.Tx]) error {
		ctx := platform.WithBatch(b.Context(), b)
		rec, err := b.Tx.Idempotency(ctx, estScope(id), key)
		switch {
		case err == nil && rec.Created.After(b.Now.Add(-httpapi.IdempotencyTTL)):
			if !bytes.Equal(rec.RequestHash, keyHash[:]) {
				return iotpay.Errorf(iotpay.EUNAUTHORIZED, "enrollment refused") // as vague as the registry's
			}
			return json.Unmarshal(rec.Body, &en)
		case err != nil && iotpay.ErrorCode(err) != iotpay.ENOTFOUND:
			return err
		}
		if en, err = r.Service.Enroll(ctx, id, token, csr, transportCSR); err != nil {
			return err
		}
		body, err := json.Marshal(en)
		if err != nil {
			return err
		}
		return b.Tx.PutIdempotency(ctx, &payment.IdempotencyRecord{Tenant: estScope(id), Key: key, RequestHash: keyHash[:],
			Status: http.StatusOK, Body: body, Created: b.Now})
	})
	return en, err
}
