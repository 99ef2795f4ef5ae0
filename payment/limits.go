package payment

import (
	"time"

	"github.com/iotpay/iotpay"
)

// DayStart returns the start of t's UTC day: daily limits reset at 00:00 UTC.
func DayStart(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// CheckLimits decides whether a binding allows paying amount given what the
// device already spent today. A refusal is an EDECLINED error whose message
// is the decline reason.
func CheckLimits(b *Binding, m iotpay.Money, spentToday int64) error {
	if m.Currency != b.Currency {
		return iotpay.Errorf(iotpay.EDECLINED, "currency %s not allowed by the binding (%s)", m.Currency, b.Currency)
	}
	if m.Amount > b.PerPaymentLimit {
		return iotpay.Errorf(iotpay.EDECLINED, "amount %s over the per-payment limit %s",
			m, iotpay.Money{Amount: b.PerPaymentLimit, Currency: b.Currency})
	}
	total, ok := iotpay.AddInt64(spentToday, m.Amount)
	if !ok || total > b.DailyLimit {
		return iotpay.Errorf(iotpay.EDECLINED, "amount %s over the daily limit %s (spent today %s)",
			m, iotpay.Money{Amount: b.DailyLimit, Currency: b.Currency},
			iotpay.Money{Amount: spentToday, Currency: b.Currency})
	}
	return nil
}
