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

// VerifyLogged checks, against the platform's audit log, that a receipt's
// payment is logged: it fetches the latest checkpoint and verifies it under
// logKey (the log's key, provisioned with the device); checks it extends
// the last checkpoint the device trusts (kept in its State); reads the
// receipt's leaf, which must record this device's request (its hash); and
// verifies the leaf's inclusion proof. The checkpoint then becomes the one
// the device trusts. A receipt whose leaf no checkpoint covers yet is
// not_found: ask again after a second.
func (d *Device) VerifyLogged(ctx context.Context, log *tlog.Client, logKey note.Verifier, rc *wire.Receipt) (*tlog.Checkpoint, error) {
	if rc.LogIndex == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "the receipt carries no log index")
	}
	signed, err := log.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
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
		if err := verify.Consistent(ctx, log, prev, cp); err != nil {
			return nil, err
		}
	}
	if *rc.LogIndex >= cp.Size {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "log index %d not covered by the checkpoint of %d leaves yet", *rc.LogIndex, cp.Size)
	}
	err = verify.Included(ctx, log, cp, verify.Leaf{Index: *rc.LogIndex, Check: func(data []byte) error {
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
