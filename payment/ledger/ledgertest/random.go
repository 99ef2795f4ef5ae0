package ledgertest

import (
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/ledger"
)

// RandomSteps is how many random operations the property test runs;
// LEDGER_RANDOM_STEPS overrides it, LEDGER_RANDOM_SEED fixes the seed.
const RandomSteps = 300

// model is the ledger's semantics written the simplest way, which the
// property test holds the real ledger to.
type model struct {
	acct     map[iotpay.AccountID]*ledger.Account
	holds    map[iotpay.TransferID]*ledger.Transfer // open, as applied
	resolved map[iotpay.TransferID]error            // how a resolved hold refuses another resolution
}

func (m *model) clone() *model {
	c := &model{acct: map[iotpay.AccountID]*ledger.Account{}, holds: maps.Clone(m.holds), resolved: maps.Clone(m.resolved)}
	for id, a := range m.acct {
		a2 := *a
		c.acct[id] = &a2
	}
	return c
}

func fitsModel(a *ledger.Account) bool {
	if a.Flags&ledger.Overdraft != 0 {
		return true
	}
	if a.Normal == ledger.Debit {
		return a.DebitsPosted >= a.CreditsPosted+a.CreditsPending
	}
	return a.CreditsPosted >= a.DebitsPosted+a.DebitsPending
}

// do applies t to the model and returns the error the ledger must give.
func (m *model) do(t *ledger.Transfer, now time.Time) error {
	if t.Flags&(ledger.PostPending|ledger.VoidPending) != 0 {
		p, ok := m.holds[t.PendingID]
		if !ok {
			if err, ok := m.resolved[t.PendingID]; ok {
				return err
			}
			return ledger.ErrPendingNotFound
		}
		amt := t.Amount
		if amt == 0 {
			amt = p.Amount
		}
		if amt > p.Amount {
			return ledger.ErrExceedsPending
		}
		d, c := m.acct[p.Debit], m.acct[p.Credit]
		d.DebitsPending -= p.Amount
		c.CreditsPending -= p.Amount
		if t.Flags&ledger.PostPending != 0 {
			d.DebitsPosted += amt
			c.CreditsPosted += amt
			m.resolved[p.ID] = ledger.ErrPendingPosted
		} else {
			m.resolved[p.ID] = ledger.ErrPendingVoided
		}
		delete(m.holds, p.ID)
		return nil
	}
	d, c := m.acct[t.Debit], m.acct[t.Credit]
	if t.Flags&ledger.Pending != 0 {
		d.DebitsPending += t.Amount
		c.CreditsPending += t.Amount
	} else {
		d.DebitsPosted += t.Amount
		c.CreditsPosted += t.Amount
	}
	if !fitsModel(d) {
		return ledger.ErrInsufficientFunds
	}
	if !fitsModel(c) {
		return ledger.ErrExceedsDebits
	}
	if t.Flags&ledger.Pending != 0 {
		h := *t
		if t.Timeout > 0 {
			h.ExpiresAt = now.Add(t.Timeout)
		}
		m.holds[t.ID] = &h
	}
	return nil
}

// expire releases the holds due at now.
func (m *model) expire(now time.Time) {
	for id, p := range m.holds {
		if !p.ExpiresAt.IsZero() && !p.ExpiresAt.After(now) {
			m.acct[p.Debit].DebitsPending -= p.Amount
			m.acct[p.Credit].CreditsPending -= p.Amount
			m.resolved[id] = ledger.ErrPendingExpired
			delete(m.holds, id)
		}
	}
}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

// testRandom runs random operations — transfers, holds, posts, voids,
// linked chains, repeats, clock jumps and restarts — and after each one
// holds the ledger to the model: the same outcome, the same balances.
func testRandom[T TxAll](x *h[T]) {
	seed := uint64(envInt("LEDGER_RANDOM_SEED", time.Now().UnixNano()))
	steps := int(envInt("LEDGER_RANDOM_STEPS", RandomSteps))
	x.t.Logf("seed %d (LEDGER_RANDOM_SEED=%d to repeat)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 7))
	m := &model{acct: map[iotpay.AccountID]*ledger.Account{}, holds: map[iotpay.TransferID]*ledger.Transfer{},
		resolved: map[iotpay.TransferID]error{}}
	var ids []iotpay.AccountID
	for _, spec := range []struct {
		kind   string
		normal ledger.Side
		flags  ledger.AccountFlags
	}{
		{"funding", ledger.Debit, 0}, {"funding", ledger.Debit, 0},
		{"payer", ledger.Credit, 0}, {"payer", ledger.Credit, 0}, {"payer", ledger.Credit, 0},
		{"merchant", ledger.Credit, 0}, {"merchant", ledger.Credit, 0},
		{"settlement", ledger.Credit, ledger.Overdraft},
	} {
		a := &ledger.Account{ID: iotpay.AccountID(iotpay.NewID(iotpay.PrefixAccount, time.Now(), nil)), Tenant: x.tenant,
			Currency: "EUR", Normal: spec.normal, Flags: spec.flags, Kind: spec.kind, Name: spec.kind}
		if err := x.w.CreateAccounts(bg, a); err != nil {
			x.t.Fatal(err)
		}
		m.acct[a.ID] = a
		ids = append(ids, a.ID)
	}
	var applied []ledger.Transfer // requests as sent, for repeats
	pair := func() (iotpay.AccountID, iotpay.AccountID) {
		d := ids[r.IntN(len(ids))]
		for {
			if c := ids[r.IntN(len(ids))]; c != d {
				return d, c
			}
		}
	}
	openHold := func() *ledger.Transfer {
		for _, p := range m.holds {
			return p
		}
		return nil
	}
	for step := range steps {
		now := x.clock.Now()
		m.expire(now)
		var ts []*ledger.Transfer
		switch op := r.IntN(11); {
		case op < 4:
			d, c := pair()
			ts = append(ts, x.xfr(d, c, r.Int64N(500)+1))
		case op == 4:
			d, c := pair()
			t := x.hold(d, c, r.Int64N(300)+1, 0)
			if r.IntN(2) == 0 {
				t.Timeout = time.Duration(r.IntN(5)+1) * time.Minute
			}
			ts = append(ts, t)
		case op == 5 || op == 6:
			p := openHold()
			if p == nil || r.IntN(8) == 0 { // sometimes an already resolved or unknown hold
				for id := range m.resolved {
					p = &ledger.Transfer{ID: id}
					break
				}
			}
			if p == nil {
				continue
			}
			flag, amt := ledger.PostPending, int64(0)
			if op == 6 {
				flag = ledger.VoidPending
			} else if r.IntN(2) == 0 && p.Amount > 0 {
				amt = r.Int64N(p.Amount+10) + 1 // may exceed the hold
			}
			ts = append(ts, x.resolve(p, flag, amt))
		case op == 7:
			for k := range r.IntN(3) + 2 {
				d, c := pair()
				t := x.xfr(d, c, r.Int64N(400)+1)
				if k > 0 {
					ts[k-1].Flags |= ledger.Linked
				}
				ts = append(ts, t)
			}
		case op == 8 && len(applied) > 0:
			t := applied[r.IntN(len(applied))]
			if t.Flags&ledger.Linked != 0 {
				continue // alone it would be an open chain
			}
			ts = append(ts, &t)
		default:
			x.clock.Add(time.Duration(r.IntN(180)) * time.Second)
			if r.IntN(4) == 0 {
				x.restart()
			}
			continue
		}
		// The model's verdict: a chain stops at its first refusal.
		want := make([]error, len(ts))
		repeat := op8(ts, applied)
		if !repeat {
			mc := m.clone()
			for i, t := range ts {
				if err := mc.do(t, now); err != nil {
					for k := range want {
						want[k] = ledger.ErrLinkedFailed
					}
					want[i] = err
					break
				}
			}
			if firstErr(want) == nil {
				m = mc
			}
		}
		reqs := make([]ledger.Transfer, len(ts))
		for i, t := range ts {
			reqs[i] = *t
		}
		got := x.submit(ts...)
		for i := range ts {
			if !errors.Is(got[i], want[i]) && !(want[i] == nil && got[i] == nil) {
				x.t.Fatalf("step %d: transfer %d of %d (%+v): got %v, want %v", step, i, len(ts), reqs[i], got[i], want[i])
			}
		}
		if firstErr(got) == nil && !repeat {
			applied = append(applied, reqs...)
		}
		x.compare(m, step)
		if step%50 == 49 {
			x.check()
		}
	}
}

// op8 reports whether ts is a repeat of an applied request.
func op8(ts []*ledger.Transfer, applied []ledger.Transfer) bool {
	if len(ts) != 1 {
		return false
	}
	for _, a := range applied {
		if a.ID == ts[0].ID {
			return true
		}
	}
	return false
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// compare holds the store's balances to the model's.
func (x *h[T]) compare(m *model, step int) {
	x.t.Helper()
	var as []*ledger.Account
	err := x.db.View(bg, func(tx T) (err error) { as, err = tx.Accounts(bg, x.tenant, ledger.AccountFilter{}); return })
	if err != nil {
		x.t.Fatal(err)
	}
	if len(as) != len(m.acct) {
		x.t.Fatalf("step %d: %d accounts stored, model has %d", step, len(as), len(m.acct))
	}
	for _, a := range as {
		if want := m.acct[a.ID].Balance; a.Balance != want {
			x.t.Fatalf("step %d: account %s (%s): store %+v, model %+v", step, a.ID, a.Kind, a.Balance, want)
		}
	}
}
