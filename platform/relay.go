package platform

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// Relayed copies: several gateways in range of one device each relay its
// message. The first is handled; another gateway's copy of the same bytes
// within relaySeenFor is dropped (the device gets its answer through the
// first). The same gateway relaying again (its store resends after a
// restart) is handled again, and answered from the original decision.
const (
	relaySeenFor = 2 * time.Minute
	relaySeenMax = 100_000
)

// relaySeen remembers which gateway first relayed a message.
type relaySeen struct {
	mu sync.Mutex
	m  map[[32]byte]relayFirst
}

type relayFirst struct {
	gateway iotpay.DeviceID
	at      time.Time
}

// first records gateway as having relayed body at now, unless another
// gateway did within relaySeenFor; it reports whether gateway is the one
// to handle it.
func (s *relaySeen) first(gateway iotpay.DeviceID, body []byte, now time.Time) bool {
	h := sha256.Sum256(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[[32]byte]relayFirst)
	}
	if f, ok := s.m[h]; ok && now.Sub(f.at) < relaySeenFor && f.gateway != gateway {
		return false
	}
	if len(s.m) >= relaySeenMax {
		for k, f := range s.m {
			if now.Sub(f.at) >= relaySeenFor {
				delete(s.m, k)
			}
		}
		if len(s.m) >= relaySeenMax {
			clear(s.m)
		}
	}
	s.m[h] = relayFirst{gateway: gateway, at: now}
	return true
}

// HandleRelay takes a device's message that gateway relayed (over its own
// MQTT/TLS connection) and returns the answer for the device: exactly what
// HandlePay answers the device on its own channel. The gateway must be an
// active device of a gateway product, and may relay only for devices of
// its tenant; the message itself is the device's, signed or sealed by it,
// so a gateway that changed a byte gets the device's request refused
// (verification failed) and no money moves. It implements the MQTT
// broker's RelayHandler.
func (p *Processor) HandleRelay(ctx context.Context, gateway iotpay.DeviceID, r *wire.Relay) []byte {
	gk, _, err := p.deviceKey(ctx, gateway)
	if err == nil {
		var kind registry.ProductKind
		if kind, err = p.productKind(ctx, gk.dev.Tenant, gk.dev.Product); err == nil && kind != registry.ProductGateway {
			err = iotpay.Errorf(iotpay.EUNAUTHORIZED, "not a gateway")
		}
	}
	if err != nil {
		p.log().Warn("relay refused: not an active gateway", "gateway", gateway, "device", r.Device, "err", err)
		return nil
	}
	device := iotpay.DeviceID(r.Device)
	if dk, _, err := p.deviceKey(ctx, device); err == nil && dk.dev.Tenant != gk.dev.Tenant {
		p.log().Warn("relay refused: device of another tenant", "gateway", gateway, "device", device)
		return nil
	}
	if !p.relayed.first(gateway, r.Body, p.now()) {
		p.log().Info("relayed copy dropped: another gateway relayed it first", "gateway", gateway, "device", device)
		return nil
	}
	return p.HandlePay(ctx, device, r.Body)
}

// productKind returns a product's kind, which never changes once the
// product is made: read once, then kept.
func (p *Processor) productKind(ctx context.Context, tenant iotpay.TenantID, id iotpay.ProductID) (registry.ProductKind, error) {
	if k, ok := p.kinds.Load(id); ok {
		return k.(registry.ProductKind), nil
	}
	var prod *registry.Product
	if err := p.Store.View(ctx, func(tx Tx) (err error) { prod, err = tx.Product(ctx, tenant, id); return }); err != nil {
		return "", err
	}
	p.kinds.Store(id, prod.Kind)
	return prod.Kind, nil
}
