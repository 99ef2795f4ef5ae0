package platform

import (
	"bytes"
	"context"
	"crypto"
	"sync"
	"sync/atomic"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// deviceKeysMax bounds the verification keys a Processor keeps; past it
// the table starts again empty (a device's next request reads its key).
const deviceKeysMax = 200_000

// deviceKey is what checking a device's signature outside the writer
// needs: its certified key, parsed once, and its suite. dev is the device
// as read then, for its fixed fields (id, tenant, product).
type deviceKey struct {
	dev   *registry.Device
	der   []byte
	key   crypto.PublicKey
	suite wire.Suite
}

// still reports whether dev, as the writer reads it, still has the key and
// suite the request was verified with. A key kept from before a device
// was re-keyed, or a suite changed, is not.
func (k *deviceKey) still(dev *registry.Device) bool {
	return bytes.Equal(dev.PublicKey, k.der) && dev.Suite == k.suite.Name()
}

// deviceKeys keeps active devices' verification keys, so that a request's
// signature is checked without a read transaction. It is only a shortcut:
// the writer reads the device again and refuses the request when the
// device is no longer active or no longer has that key (deviceKey.still),
// and drops the entry then, as it does for a signature that fails.
type deviceKeys struct {
	m sync.Map // iotpay.DeviceID → *deviceKey
	n atomic.Int64
}

func (ks *deviceKeys) get(id iotpay.DeviceID) (*deviceKey, bool) {
	v, ok := ks.m.Load(id)
	if !ok {
		return nil, false
	}
	return v.(*deviceKey), true
}

func (ks *deviceKeys) put(id iotpay.DeviceID, k *deviceKey) {
	if ks.n.Add(1) > deviceKeysMax {
		ks.m.Clear()
		ks.n.Store(1)
	}
	ks.m.Store(id, k)
}

func (ks *deviceKeys) forget(id iotpay.DeviceID) { ks.m.Delete(id) }

// ForgetDevice drops what the processor keeps of a device (its
// verification key): the registry calls it when a device is revoked or
// re-keyed (registry.Service.OnDeviceChange).
func (p *Processor) ForgetDevice(id iotpay.DeviceID) { p.keys.forget(id) }

// deviceKey returns the verification key of an active device: the kept one
// (cached true) or one read now, or the vague refusal of p.device.
func (p *Processor) deviceKey(ctx context.Context, id iotpay.DeviceID) (k *deviceKey, cached bool, err error) {
	if k, ok := p.keys.get(id); ok {
		return k, true, nil
	}
	dev, err := p.device(ctx, id)
	if err != nil {
		return nil, false, err
	}
	suite, err := wire.SuiteByName(dev.Suite)
	if err != nil {
		return nil, false, err
	}
	key, err := dev.Key()
	if err != nil {
		return nil, false, err
	}
	k = &deviceKey{dev: dev, der: dev.PublicKey, key: key, suite: suite}
	p.keys.put(id, k)
	return k, false, nil
}
