package platform

import (
	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/wire"
)

// Price turns a request into the amount the device's product charges. An
// error is EINVALID: the request does not fit the product.
func Price(p *registry.Product, r *wire.Request) (iotpay.Money, error) {
	pr := p.Pricing
	if pr.Mode == registry.PriceAmount {
		if r.Event != nil {
			return iotpay.Money{}, iotpay.Errorf(iotpay.EINVALID, "product %s takes an amount, not an event", p.Name)
		}
		if iotpay.Currency(r.Currency) != pr.Currency {
			return iotpay.Money{}, iotpay.Errorf(iotpay.EINVALID, "product %s charges in %s", p.Name, pr.Currency)
		}
		return iotpay.Money{Amount: r.AmountMinor, Currency: pr.Currency}, nil
	}
	if r.Event == nil {
		return iotpay.Money{}, iotpay.Errorf(iotpay.EINVALID, "product %s prices events, not amounts", p.Name)
	}
	if pr.Event != "" && r.Event.Type != pr.Event {
		return iotpay.Money{}, iotpay.Errorf(iotpay.EINVALID, "product %s does not charge for event %q", p.Name, r.Event.Type)
	}
	switch pr.Mode {
	case registry.PriceFixed:
		return iotpay.Money{Amount: pr.PriceMinor, Currency: pr.Currency}, nil
	case registry.PriceMetered:
		q, ok := r.Event.Num[pr.Unit]
		if !ok || q <= 0 {
			return iotpay.Money{}, iotpay.Errorf(iotpay.EINVALID, "event needs a positive %q quantity", pr.Unit)
		}
		amt, ok := iotpay.MulDivCeil(q, pr.PriceMinor, pr.PerUnits)
		if !ok {
			return iotpay.Money{}, iotpay.Errorf(iotpay.EINVALID, "metered amount overflows")
		}
		return iotpay.Money{Amount: amt, Currency: pr.Currency}, nil
	}
	return iotpay.Money{}, iotpay.Errorf(iotpay.EINVALID, "product %s has no usable pricing", p.Name)
}
