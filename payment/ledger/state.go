package ledger

import (
	"container/heap"
	"context"
	"io"
	"time"
	"unicode/utf8"

	"github.com/iotpay/iotpay"
)

// Tx is what the ledger needs from a store inside the Writer's write
// transaction. Reads see the transaction's own earlier writes.
type Tx interface {
	// LookupTransfers returns the stored transfers among ids; ids not
	// stored are simply absent from the result.
	LookupTransfers(ctx context.Context, ids []iotpay.TransferID) ([]*Transfer, error)
	// Resolution returns the transfer that posted, voided or expired the
	// hold pending, ENOTFOUND when there is none.
	Resolution(ctx context.Context, pending iotpay.TransferID) (*Transfer, error)
	// InsertAccounts stores new accounts; InsertTransfers new transfers, in
	// Seq order; UpdateBalances the current balances of accounts.
	InsertAccounts(ctx context.Context, as []*Account) error
	InsertTransfers(ctx context.Context, ts []*Transfer) error
	UpdateBalances(ctx context.Context, as []*Account) error
	// LoadLedger reads the state the Writer keeps in memory: every
	// account, every hold not yet resolved, and the last Seq.
	LoadLedger(ctx context.Context) (accounts []*Account, open []*Transfer, lastSeq int64, err error)
}

// undo is one journal entry: how to take back one change to the state.
type undo struct {
	acct     *Account // restore acct.Balance to bal
	bal      Balance
	pendAdd  iotpay.TransferID // delete from open holds
	pendDel  *Transfer         // put back into open holds
	resolved iotpay.TransferID // delete from resolved
	popped   *Transfer         // push back onto the expiry heap
	newAcct  iotpay.AccountID  // delete from accounts
	known    iotpay.TransferID // delete from known
}

// mark is a point in the journal an operation can be undone to.
type mark struct {
	journal, accounts, transfers int
	seq                          int64
}

// state is the ledger's memory: accounts, open holds and the changes of
// the batch not yet committed. Only the Writer's goroutine touches it.
type state struct {
	accounts map[iotpay.AccountID]*Account
	open     map[iotpay.TransferID]*Transfer
	expiry   expiryHeap
	seq      int64
	rand     io.Reader

	// The batch in progress.
	journal      []undo
	newAccounts  []*Account
	newTransfers []*Transfer
	dirty        map[*Account]struct{}
	known        map[iotpay.TransferID]*Transfer // stored or applied in this batch
	absent       map[iotpay.TransferID]struct{}  // known not to be stored
	resolved     map[iotpay.TransferID]*Transfer // holds resolved in this batch
}

func newState(r io.Reader) *state {
	return &state{
		accounts: map[iotpay.AccountID]*Account{}, open: map[iotpay.TransferID]*Transfer{}, rand: r,
		dirty: map[*Account]struct{}{}, known: map[iotpay.TransferID]*Transfer{},
		absent: map[iotpay.TransferID]struct{}{}, resolved: map[iotpay.TransferID]*Transfer{},
	}
}

// load replaces the state with what tx holds.
func (s *state) load(ctx context.Context, tx Tx) error {
	as, open, seq, err := tx.LoadLedger(ctx)
	if err != nil {
		return err
	}
	n := newState(s.rand)
	for _, a := range as {
		n.accounts[a.ID] = a
	}
	for _, t := range open {
		n.open[t.ID] = t
		if !t.ExpiresAt.IsZero() {
			heap.Push(&n.expiry, t)
		}
	}
	n.seq = seq
	*s = *n
	return nil
}

func (s *state) mark() mark {
	return mark{journal: len(s.journal), accounts: len(s.newAccounts), transfers: len(s.newTransfers), seq: s.seq}
}

// undoTo takes back every change made since m.
func (s *state) undoTo(m mark) {
	for i := len(s.journal) - 1; i >= m.journal; i-- {
		u := s.journal[i]
		switch {
		case u.acct != nil:
			u.acct.Balance = u.bal
		case u.pendAdd != "":
			delete(s.open, u.pendAdd)
		case u.pendDel != nil:
			s.open[u.pendDel.ID] = u.pendDel
		case u.resolved != "":
			delete(s.resolved, u.resolved)
		case u.popped != nil:
			heap.Push(&s.expiry, u.popped)
		case u.newAcct != "":
			delete(s.accounts, u.newAcct)
		case u.known != "":
			delete(s.known, u.known)
		}
	}
	s.journal = s.journal[:m.journal]
	clear(s.newAccounts[m.accounts:])
	s.newAccounts = s.newAccounts[:m.accounts]
	clear(s.newTransfers[m.transfers:])
	s.newTransfers = s.newTransfers[:m.transfers]
	s.seq = m.seq
}

// setBalance changes a's balance, journaled.
func (s *state) setBalance(a *Account, b Balance) {
	s.journal = append(s.journal, undo{acct: a, bal: a.Balance})
	a.Balance = b
	s.dirty[a] = struct{}{}
}

// flush writes the batch's changes through tx.
func (s *state) flush(ctx context.Context, tx Tx) error {
	if len(s.newAccounts) > 0 {
		if err := tx.InsertAccounts(ctx, s.newAccounts); err != nil {
			return err
		}
	}
	if len(s.newTransfers) > 0 {
		if err := tx.InsertTransfers(ctx, s.newTransfers); err != nil {
			return err
		}
	}
	if len(s.dirty) > 0 {
		as := make([]*Account, 0, len(s.dirty))
		for a := range s.dirty {
			as = append(as, a)
		}
		if err := tx.UpdateBalances(ctx, as); err != nil {
			return err
		}
	}
	return nil
}

// settle forgets the batch's journal once it is committed.
func (s *state) settle() {
	s.journal = s.journal[:0]
	clear(s.newAccounts)
	s.newAccounts = s.newAccounts[:0]
	clear(s.newTransfers)
	s.newTransfers = s.newTransfers[:0]
	clear(s.dirty)
	clear(s.known)
	clear(s.absent)
	clear(s.resolved)
}

// printable reports whether s is valid UTF-8 without control characters:
// what every store can keep as text.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func (s *state) createAccount(a *Account, now time.Time) error {
	if !iotpay.ValidID(iotpay.PrefixAccount, string(a.ID)) {
		return ErrAccountIDInvalid
	}
	if a.Tenant == "" || !printable(string(a.Tenant)) || len(a.Tenant) > NameLenMax || !a.Currency.Valid() ||
		(a.Normal != Debit && a.Normal != Credit) || a.Flags&^accountFlagsAll != 0 ||
		len(a.Name) > NameLenMax || !printable(a.Name) || len(a.Kind) > KindLenMax || !printable(a.Kind) ||
		a.Balance != (Balance{}) {
		return ErrAccountInvalid
	}
	if have, ok := s.accounts[a.ID]; ok {
		if !have.sameFields(a) {
			return ErrAccountExists
		}
		*a = *have
		return nil
	}
	c := *a
	c.Created = now
	s.accounts[c.ID] = &c
	s.journal = append(s.journal, undo{newAcct: c.ID})
	s.newAccounts = append(s.newAccounts, &c)
	*a = c
	return nil
}

// validate checks what a transfer says on its own.
func validate(t *Transfer) error {
	if !iotpay.ValidID(iotpay.PrefixTransfer, string(t.ID)) {
		return ErrIDInvalid
	}
	if len(t.Kind) > KindLenMax || len(t.Ref) > RefLenMax || !printable(t.Kind) || !printable(t.Ref) ||
		t.Tenant == "" || len(t.Tenant) > NameLenMax || !printable(string(t.Tenant)) {
		return ErrFieldInvalid
	}
	f := t.Flags
	kinds := 0
	for _, k := range []TransferFlags{Pending, PostPending, VoidPending} {
		if f&k != 0 {
			kinds++
		}
	}
	if f&^transferFlagsAll != 0 || f&Expired != 0 || kinds > 1 {
		return ErrFlagsInvalid
	}
	if t.Timeout < 0 || t.Timeout > TimeoutMax || (t.Timeout != 0 && f&Pending == 0) || t.Timeout%time.Millisecond != 0 {
		return ErrFieldInvalid
	}
	if f&(PostPending|VoidPending) != 0 {
		if !iotpay.ValidID(iotpay.PrefixTransfer, string(t.PendingID)) {
			return ErrPendingNotFound
		}
		if t.Amount < 0 || t.Amount > AmountMax {
			return ErrAmountInvalid
		}
		if t.Currency != "" && !t.Currency.Valid() {
			return ErrCurrencyMismatch
		}
		return nil
	}
	if t.PendingID != "" {
		return ErrFlagsInvalid
	}
	if t.Amount <= 0 || t.Amount > AmountMax {
		return ErrAmountInvalid
	}
	if !t.Currency.Valid() {
		return ErrCurrencyMismatch
	}
	if t.Debit == t.Credit {
		return ErrSameAccount
	}
	return nil
}

// lookup makes sure every id of ts is either known or known absent,
// reading the store once for all that are neither.
func (s *state) lookup(ctx context.Context, tx Tx, want []iotpay.TransferID) error {
	var ids []iotpay.TransferID
	for _, id := range want {
		if _, ok := s.known[id]; ok {
			continue
		}
		if _, ok := s.absent[id]; ok {
			continue
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil
	}
	found, err := tx.LookupTransfers(ctx, ids)
	if err != nil {
		return err
	}
	for _, t := range found {
		s.known[t.ID] = t
	}
	for _, id := range ids {
		if _, ok := s.known[id]; !ok {
			s.absent[id] = struct{}{}
		}
	}
	return nil
}

// apply applies ts in order, each linked chain all or nothing, and returns
// one error per transfer (nil for applied ones). An applied transfer is
// filled in (Seq, Time, balances); a repeated one gets the stored values.
// A store failure is returned as err and leaves the state as it was.
func (s *state) apply(ctx context.Context, tx Tx, ts []*Transfer, now time.Time) (errs []error, err error) {
	if len(ts) > TransfersPerCallMax {
		errs = make([]error, len(ts))
		for i := range errs {
			errs[i] = ErrTooMany
		}
		return errs, nil
	}
	ids := make([]iotpay.TransferID, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	if err := s.lookup(ctx, tx, ids); err != nil {
		return nil, err
	}
	errs = make([]error, len(ts))
	for i := 0; i < len(ts); {
		j := i
		for j < len(ts)-1 && ts[j].Flags&Linked != 0 {
			j++
		}
		chain := ts[i : j+1]
		if chain[len(chain)-1].Flags&Linked != 0 {
			for k := range chain {
				errs[i+k] = ErrLinkedOpen
			}
			break
		}
		saved := make([]Transfer, len(chain))
		for k, t := range chain {
			saved[k] = *t
		}
		m := s.mark()
		for k, t := range chain {
			e, err := s.applyOne(ctx, tx, t, now)
			if err != nil {
				s.undoTo(m)
				for k, t := range chain {
					*t = saved[k]
				}
				return nil, err
			}
			if e != nil {
				s.undoTo(m)
				for k2, t2 := range chain {
					*t2 = saved[k2]
					errs[i+k2] = ErrLinkedFailed
				}
				errs[i+k] = e
				break
			}
		}
		i = j + 1
	}
	return errs, nil
}

// applyOne applies one transfer: e is why it was refused, err a store
// failure.
func (s *state) applyOne(ctx context.Context, tx Tx, t *Transfer, now time.Time) (e, err error) {
	if e := validate(t); e != nil {
		return e, nil
	}
	if stored, ok := s.known[t.ID]; ok {
		if !t.sameRequest(stored) {
			return ErrExists, nil
		}
		*t = *stored
		return nil, nil
	}
	c := *t
	var d, cr *Account
	var db, cb Balance
	if c.Flags&(PostPending|VoidPending) != 0 {
		p, e, err := s.hold(ctx, tx, c.PendingID, c.Tenant)
		if e != nil || err != nil {
			return e, err
		}
		if (c.Debit != "" && c.Debit != p.Debit) || (c.Credit != "" && c.Credit != p.Credit) ||
			(c.Currency != "" && c.Currency != p.Currency) {
			return ErrPendingMismatch, nil
		}
		c.Debit, c.Credit, c.Currency = p.Debit, p.Credit, p.Currency
		if c.Amount == 0 {
			c.Amount = p.Amount
		}
		if c.Amount > p.Amount {
			return ErrExceedsPending, nil
		}
		if c.Flags&VoidPending != 0 && c.Amount != p.Amount {
			return ErrPendingMismatch, nil
		}
		d, cr = s.accounts[c.Debit], s.accounts[c.Credit]
		db, cb = d.Balance, cr.Balance
		db.DebitsPending -= p.Amount
		cb.CreditsPending -= p.Amount
		if c.Flags&PostPending != 0 {
			var ok1, ok2 bool
			db.DebitsPosted, ok1 = iotpay.AddInt64(db.DebitsPosted, c.Amount)
			cb.CreditsPosted, ok2 = iotpay.AddInt64(cb.CreditsPosted, c.Amount)
			if !ok1 || !ok2 {
				return ErrOverflow, nil
			}
		}
		s.journal = append(s.journal, undo{pendDel: p}, undo{resolved: p.ID})
		delete(s.open, p.ID)
		s.resolved[p.ID] = &c
	} else {
		d, cr = s.accounts[c.Debit], s.accounts[c.Credit]
		if d == nil || cr == nil || d.Tenant != c.Tenant || cr.Tenant != c.Tenant {
			return ErrAccountNotFound, nil
		}
		if d.Currency != c.Currency || cr.Currency != c.Currency {
			return ErrCurrencyMismatch, nil
		}
		db, cb = d.Balance, cr.Balance
		var ok1, ok2 bool
		if c.Flags&Pending != 0 {
			db.DebitsPending, ok1 = iotpay.AddInt64(db.DebitsPending, c.Amount)
			cb.CreditsPending, ok2 = iotpay.AddInt64(cb.CreditsPending, c.Amount)
		} else {
			db.DebitsPosted, ok1 = iotpay.AddInt64(db.DebitsPosted, c.Amount)
			cb.CreditsPosted, ok2 = iotpay.AddInt64(cb.CreditsPosted, c.Amount)
		}
		if !ok1 || !ok2 {
			return ErrOverflow, nil
		}
		if !d.fits(db) {
			return ErrInsufficientFunds, nil
		}
		if !cr.fits(cb) {
			return ErrExceedsDebits, nil
		}
		if c.Flags&Pending != 0 {
			if c.Timeout > 0 {
				c.ExpiresAt = now.Add(c.Timeout)
			}
		}
	}
	s.finish(&c, d, cr, db, cb, now)
	*t = c
	return nil, nil
}

// finish records an applied transfer.
func (s *state) finish(c *Transfer, d, cr *Account, db, cb Balance, now time.Time) {
	s.setBalance(d, db)
	s.setBalance(cr, cb)
	s.seq++
	c.Seq, c.Time = s.seq, now
	c.DebitBalance, c.CreditBalance = db, cb
	s.newTransfers = append(s.newTransfers, c)
	s.known[c.ID] = c
	s.journal = append(s.journal, undo{known: c.ID})
	if c.Flags&Pending != 0 {
		s.open[c.ID] = c
		s.journal = append(s.journal, undo{pendAdd: c.ID})
		if !c.ExpiresAt.IsZero() {
			heap.Push(&s.expiry, c) // undone lazily: expire skips holds no longer open
		}
	}
}

// hold returns the open hold id, or why it cannot be resolved.
func (s *state) hold(ctx context.Context, tx Tx, id iotpay.TransferID, tenant iotpay.TenantID) (p *Transfer, e, err error) {
	if p := s.open[id]; p != nil {
		if p.Tenant != tenant {
			return nil, ErrPendingNotFound, nil
		}
		return p, nil, nil
	}
	r := s.resolved[id]
	if r == nil {
		r, err = tx.Resolution(ctx, id)
		if iotpay.ErrorCode(err) == iotpay.ENOTFOUND {
			return nil, ErrPendingNotFound, nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
	switch {
	case r.Tenant != tenant:
		return nil, ErrPendingNotFound, nil
	case r.Flags&PostPending != 0:
		return nil, ErrPendingPosted, nil
	case r.Flags&VoidPending != 0:
		return nil, ErrPendingVoided, nil
	}
	return nil, ErrPendingExpired, nil
}

// expire resolves every open hold whose time has come with an Expired
// transfer, and returns those transfers.
func (s *state) expire(now time.Time) []*Transfer {
	var out []*Transfer
	for s.expiry.Len() > 0 && !s.expiry[0].ExpiresAt.After(now) {
		p := heap.Pop(&s.expiry).(*Transfer)
		s.journal = append(s.journal, undo{popped: p})
		if s.open[p.ID] != p {
			continue
		}
		d, cr := s.accounts[p.Debit], s.accounts[p.Credit]
		db, cb := d.Balance, cr.Balance
		db.DebitsPending -= p.Amount
		cb.CreditsPending -= p.Amount
		c := &Transfer{
			ID: iotpay.TransferID(iotpay.NewID(iotpay.PrefixTransfer, now, s.rand)), Tenant: p.Tenant,
			Debit: p.Debit, Credit: p.Credit, Amount: p.Amount, Currency: p.Currency, Flags: Expired,
			PendingID: p.ID, Kind: "expire", Ref: p.Ref,
		}
		s.journal = append(s.journal, undo{pendDel: p}, undo{resolved: p.ID})
		delete(s.open, p.ID)
		s.resolved[p.ID] = c
		s.finish(c, d, cr, db, cb, now)
		out = append(out, c)
	}
	return out
}

// nextExpiry is when the next open hold expires (zero when none).
func (s *state) nextExpiry() time.Time {
	for s.expiry.Len() > 0 {
		p := s.expiry[0]
		if s.open[p.ID] == p {
			return p.ExpiresAt
		}
		heap.Pop(&s.expiry) // resolved: drop it (outside any batch)
	}
	return time.Time{}
}

// expiryHeap orders holds by expiry.
type expiryHeap []*Transfer

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].ExpiresAt.Before(h[j].ExpiresAt) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(*Transfer)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}
