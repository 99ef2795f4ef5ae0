package daemon

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/internal/atomicfile"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/platform/webhook"
	"github.com/iotpay/iotpay/store/sqlstore"
	"github.com/iotpay/iotpay/wire"
)

// Supply orders and device watching.
const (
	// SupplySecretFile holds the secret tenants' supply webhook keys are
	// derived from.
	SupplySecretFile  = "supply-secret"
	supplySecretBytes = 32
	// OrderAttemptsMax bounds the deliveries of one order; the delay
	// doubles from platform.OrderRetryMin up to OrderRetryMax.
	OrderAttemptsMax = 8
	OrderRetryMax    = 5 * time.Minute
	orderTimeout     = 10 * time.Second
	ordersPerRound   = 64
	// WatchInterval is how often due orders and inactive devices are
	// looked for (Config.WatchInterval overrides it).
	WatchInterval = time.Second
	// PingInterval is how often the external payment systems are asked
	// whether they are up (an ISO 8583 echo, a cheap API call).
	PingInterval   = 30 * time.Second
	inactivePerRun = 256
)

// loadSupplySecret reads (creating on first use) the supply secret.
func loadSupplySecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(b) == supplySecretBytes:
		return b, nil
	case err == nil:
		return nil, iotpay.Errorf(iotpay.EINVALID, "%s is not %d bytes", path, supplySecretBytes)
	case !os.IsNotExist(err):
		return nil, err
	}
	b = make([]byte, supplySecretBytes)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return nil, err
	}
	return b, atomicfile.WriteNew(path, b, 0o600)
}

// SupplySecret is the key a tenant's suppliers check its orders with.
func (d *Daemon) SupplySecret(tenant iotpay.TenantID) (string, error) {
	k, err := hkdf.Key(sha256.New, d.supplySecret, nil, "iotpay supply webhook "+string(tenant), 32)
	if err != nil {
		return "", err
	}
	return "whsec_" + hex.EncodeToString(k), nil
}

// OrderBody is what a supplier receives for a refill order.
type OrderBody struct {
	Type     string           `json:"type"` // "supply.order"
	ID       string           `json:"id"`
	Tenant   iotpay.TenantID  `json:"tenant"`
	Device   iotpay.DeviceID  `json:"device"`
	Product  iotpay.ProductID `json:"product"`
	Item     string           `json:"item"`
	Quantity int64            `json:"quantity"`
	Created  time.Time        `json:"created"`
}

// watch delivers due supply orders and raises inactivity events, every
// interval or when woken.
func (d *Daemon) watch(interval time.Duration) {
	defer close(d.watchDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	client := webhook.Client(d.cfg.AllowPrivateWebhooks)
	var pinged time.Time
	for {
		select {
		case <-d.watchStop:
			return
		case <-t.C:
			d.markInactive()
			if r := d.Payments.Router; r != nil && time.Since(pinged) >= PingInterval {
				// A health check feeds the breakers between payments.
				ctx, cancel := context.WithTimeout(context.Background(), orderTimeout)
				r.Ping(ctx)
				cancel()
				pinged = time.Now()
			}
		case <-d.wake:
		}
		d.deliverOrders(client)
		d.deliverWebhooks(client)
		d.followUp()
	}
}

// followUpsPerRound bounds the follow-ups one round of the watcher does.
const followUpsPerRound = 64

// followUp does the follow-ups payment systems owe the ledger that are
// due: those whose first try failed, or that waited (a release).
func (d *Daemon) followUp() {
	if d.Payments.Router == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, _, err := d.Payments.FollowUpsDue(ctx, followUpsPerRound); err != nil {
		d.log.Error("follow-ups not read", "err", err)
	}
}

// webhooksPerRound bounds the deliveries one round of the watcher sends.
const webhooksPerRound = 128

// deliverWebhooks sends the webhook deliveries that are due, one attempt
// each, and records how each went.
func (d *Daemon) deliverWebhooks(client *http.Client) {
	ctx := context.Background()
	var due []*webhook.Delivery
	endpoints := map[string]*webhook.Endpoint{}
	err := d.DB.View(ctx, func(tx *sqlstore.Tx) error {
		var err error
		if due, err = tx.DueDeliveries(ctx, time.Now(), webhooksPerRound); err != nil {
			return err
		}
		seen := map[iotpay.TenantID]bool{}
		for _, w := range due {
			if seen[w.Tenant] {
				continue
			}
			seen[w.Tenant] = true
			es, err := tx.Endpoints(ctx, w.Tenant)
			if err != nil {
				return err
			}
			for _, e := range es {
				endpoints[e.ID] = e
			}
		}
		return nil
	})
	if err != nil {
		d.log.Error("reading due webhook deliveries", "err", err)
		return
	}
	for _, w := range due {
		e := endpoints[w.Endpoint]
		if e == nil {
			w.Status, w.LastError, w.Next = webhook.Failed, "endpoint deleted", time.Time{}
		} else {
			webhook.Attempt(ctx, client, e, w, time.Now())
		}
		if w.Status != webhook.Delivered {
			d.log.Warn("webhook not delivered", "delivery", w.ID, "type", w.Type, "attempt", w.Attempts, "status", w.Status, "err", w.LastError)
		}
		if err := d.Payments.Do(ctx, func(b *ledger.Batch[platform.Tx]) error { return b.Tx.UpdateDelivery(b.Context(), w) }); err != nil {
			d.log.Error("recording a webhook delivery", "delivery", w.ID, "err", err)
		}
	}
}

// wakeWatcher makes the watcher look for due orders now.
func (d *Daemon) wakeWatcher() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Daemon) deliverOrders(client *http.Client) {
	ctx := context.Background()
	var due []*decision.Order
	err := d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) { due, err = tx.DueOrders(ctx, time.Now(), ordersPerRound); return })
	if err != nil {
		d.log.Error("reading due orders", "err", err)
		return
	}
	for _, o := range due {
		err := d.sendOrder(ctx, client, o)
		now := time.Now()
		o.Attempts++
		switch {
		case err == nil:
			o.Status, o.Delivered, o.LastError = decision.OrderDelivered, now, ""
			d.log.Info("supply order delivered", "order", o.ID, "supplier", o.Supplier)
		case o.Attempts >= OrderAttemptsMax:
			o.Status, o.LastError = decision.OrderFailed, err.Error()
			d.log.Error("supply order given up", "order", o.ID, "attempts", o.Attempts, "err", err)
		default:
			o.LastError, o.Next = err.Error(), now.Add(min(platform.OrderRetryMin<<(o.Attempts-1), OrderRetryMax))
			d.log.Warn("supply order not delivered", "order", o.ID, "attempt", o.Attempts, "err", err)
		}
		if err := d.Payments.Do(ctx, func(b *ledger.Batch[platform.Tx]) error { return b.Tx.UpdateOrder(b.Context(), o) }); err != nil {
			d.log.Error("recording a supply order's delivery", "order", o.ID, "err", err)
		}
	}
}

func (d *Daemon) sendOrder(ctx context.Context, client *http.Client, o *decision.Order) error {
	body, err := json.Marshal(OrderBody{Type: decision.EventOrderPlaced, ID: o.ID, Tenant: o.Tenant, Device: o.Device,
		Product: o.Product, Item: o.Item, Quantity: o.Quantity, Created: o.Created})
	if err != nil {
		return err
	}
	secret, err := d.SupplySecret(o.Tenant)
	if err != nil {
		return err
	}
	return webhook.Post(ctx, client, o.Supplier, secret, o.ID, body, time.Now())
}

// markInactive raises device.inactive for every device silent beyond its
// product's inactivity timeout, once until it is heard from again.
func (d *Daemon) markInactive() {
	ctx := context.Background()
	// A read first: most rounds find nobody, and need no write.
	var any []*registry.Device
	err := d.DB.View(ctx, func(tx *sqlstore.Tx) (err error) { any, err = tx.InactiveDevices(ctx, time.Now(), 1); return })
	if err != nil || len(any) == 0 {
		if err != nil {
			d.log.Error("looking for inactive devices", "err", err)
		}
		return
	}
	err = d.Payments.Do(ctx, func(b *ledger.Batch[platform.Tx]) error {
		ctx, tx, now := b.Context(), b.Tx, b.Now
		devs, err := tx.InactiveDevices(ctx, now, inactivePerRun)
		if err != nil {
			return err
		}
		for _, dev := range devs {
			st, err := registry.LoadState(ctx, tx, dev.ID)
			if err != nil {
				return err
			}
			st.Inactive, st.Updated = now, now
			if st.Version == 0 {
				st.Version = 1
			}
			if err := tx.PutState(ctx, st); err != nil {
				return err
			}
			last := dev.LastSeen
			if last.IsZero() {
				last = dev.Created
			}
			if err := platform.RaiseEvent(ctx, tx, &decision.Event{ID: iotpay.NewID(iotpay.PrefixEvent, now, nil), Tenant: dev.Tenant, Device: dev.ID,
				Kind: decision.EventInactive, Detail: "silent since " + last.UTC().Format(time.RFC3339), Created: now}); err != nil {
				return err
			}
			d.log.Info("device inactive", "device", dev.ID, "last_seen", last)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ledger.ErrClosed) {
		d.log.Error("looking for inactive devices", "err", err)
	}
}

// pushDesired sends a device its new desired state, signed, on its
// desired topic (retained, so it gets it when it next connects).
func (d *Daemon) pushDesired(st *registry.State) {
	var dev *registry.Device
	err := d.DB.View(context.Background(), func(tx *sqlstore.Tx) (err error) { dev, err = tx.Device(context.Background(), st.Device); return })
	if err != nil {
		d.log.Error("desired state not pushed", "device", st.Device, "err", err)
		return
	}
	suite, err := wire.SuiteByName(dev.Suite)
	if err != nil {
		return
	}
	b, err := d.Processor.SignDesired(suite, st, time.Now())
	if err == nil && d.Broker != nil {
		err = d.Broker.PublishRetained(wire.DesiredTopic(string(st.Device)), b)
	}
	if err != nil {
		d.log.Error("desired state not pushed", "device", st.Device, "err", err)
	}
}
