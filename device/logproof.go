package device

import (
	"bytes"
	"context"

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/audit/verify"
	"github.com/iotpay/iotpay/wire"
)

// VerifyLogged checks, against the platform's audit log read over HTTP,
// that a receipt's payment is logged: it fetches the latest checkpoint and
// verifies it under logKey (the log's key, provisioned with the device);
// checks it extends the last checkpoint the device trusts (kept in its
// State); reads the receipt's leaf, which must record this device's request
// (its hash); and verifies the leaf's inclusion proof. The checkpoint then
// becomes the one the device trusts. A receipt whose leaf no checkpoint
// covers yet is not_found: ask again after a second.
func (d *Device) VerifyLogged(ctx context.Context, log *tlog.Client, logKey note.Verifier, rc *wire.Receipt) (*tlog.Checkpoint, error) {
	if rc.LogIndex == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "the receipt carries no log index")
	}
	signed, err := log.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	return d.verifyLogged(ctx, signed, log, logKey, rc)
}

// VerifyLoggedOver is VerifyLogged for a device that reaches the platform
// only on its payment channel (MQTT, CoAP, HTTPS): it sends a LogQuery over
// t and checks the checkpoint and proofs the platform answers with, the
// same way.
func (d *Device) VerifyLoggedOver(ctx context.Context, t Transport, logKey note.Verifier, rc *wire.Receipt) (*tlog.Checkpoint, error) {
	if rc.LogIndex == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "the receipt carries no log index")
	}
	q := wire.LogQuery{Index: *rc.LogIndex}
	d.mu.Lock()
	if d.state.Checkpoint != nil {
		if cp, _, err := tlog.OpenCheckpoint(d.state.Checkpoint, logKey); err == nil {
			q.Trusted = cp.Size
		}
	}
	d.mu.Unlock()
	b, err := wire.EncodeLogQuery(q)
	if err != nil {
		return nil, err
	}
	answer, err := t.Exchange(ctx, b, func(a []byte) bool {
		return wire.IsLogProof(a)
	})
	if err != nil {
		return nil, err
	}
	p, err := wire.ParseLogProof(answer)
	if err != nil {
		return nil, err
	}
	if p.Index != q.Index {
		return nil, iotpay.Errorf(iotpay.EINVALID, "the log answered for leaf %d, not %d", p.Index, q.Index)
	}
	return d.verifyLogged(ctx, p.Checkpoint, channelProofs{p}, logKey, rc)
}

// channelProofs serves the proofs of one LogProof to verify's checks.
type channelProofs struct{ p *wire.LogProof }

func (c channelProofs) ConsistencyProof(context.Context, uint64, uint64) ([][]byte, error) {
	return c.p.Consistency, nil
}

func (c channelProofs) InclusionProof(_ context.Context, index, _ uint64) ([][]byte, error) {
	if index != c.p.Index {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "no proof for leaf %d", index)
	}
	return c.p.Inclusion, nil
}

func (c channelProofs) Leaf(_ context.Context, index, _ uint64) ([]byte, error) {
	if index != c.p.Index {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "no leaf %d", index)
	}
	return c.p.Leaf, nil
}

// verifyLogged checks signed, the latest checkpoint, and the receipt's
// leaf against it with proofs, then trusts signed.
func (d *Device) verifyLogged(ctx context.Context, signed []byte, proofs verify.Proofs, logKey note.Verifier, rc *wire.Receipt) (*tlog.Checkpoint, error) {
	cp, _, err := tlog.OpenCheckpoint(signed, logKey)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	trusted := d.state.Checkpoint
	d.mu.Unlock()
	if trusted != nil {
		prev, _, err := tlog.OpenCheckpoint(trusted, logKey)
		if err != nil {
			return nil, iotpay.Wrap(iotpay.EINVALID, "the checkpoint the device trusts does not verify under this log key", err)
		}
		if err := verify.Consistent(ctx, proofs, prev, cp); err != nil {
			return nil, err
		}
	}
	if *rc.LogIndex >= cp.Size {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "log index %d not covered by the checkpoint of %d leaves yet", *rc.LogIndex, cp.Size)
	}
	err = verify.Included(ctx, proofs, cp, verify.Leaf{Index: *rc.LogIndex, Check: func(data []byte) error {
		l, err := audit.ParseLeaf(data)
		if err != nil {
			return err
		}
		if l.Device != string(d.id.ID) || !bytes.Equal(l.RequestHash, rc.RequestHash) {
			return iotpay.Errorf(iotpay.EUNAUTHORIZED, "the log's leaf %d records another request", *rc.LogIndex)
		}
		return nil
	}})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Keep it unless another call moved the state on meanwhile.
	if bytes.Equal(d.state.Checkpoint, trusted) && !bytes.Equal(signed, trusted) {
		next := d.state
		next.Checkpoint = signed
		if err := d.store.Save(next); err != nil {
			return nil, err
		}
		d.state = next
	}
	return &cp, nil
}
