// Package ledger is the double-entry ledger under the payment layer:
// accounts with a currency and a normal balance, immutable transfers with
// client-supplied ids, pending transfers (holds) that are posted in full or
// in part, voided or expired, multi-leg linked transfers applied all or
// nothing, and point-in-time balances.
//
// The design follows TigerBeetle: the current state of every account and
// open hold lives in memory, owned by one goroutine (the Writer), which
// decides transfers without reading the database and persists a whole batch
// of work — many payments' transfers and whatever else those payments write —
// in one database transaction. Durability costs one commit per batch, not
// one per transfer, and a hot account is no slower than a cold one.
//
// Every transfer moves an amount from a debit account to a credit account of
// the same currency, so per currency the debits and credits of all accounts
// are equal: the balances sum to zero, always.
package ledger

import (
	"time"

	"github.com/iotpay/iotpay"
)

// Bounds.
const (
	// AmountMax bounds one transfer so that sums stay far from overflow.
	AmountMax = int64(1) << 50
	// TimeoutMax bounds how long a hold may stay open.
	TimeoutMax = 366 * 24 * time.Hour
	// TransfersPerCallMax bounds one call's transfers (a linked chain is
	// at most this long).
	TransfersPerCallMax = 8190
	// KindLenMax and RefLenMax bound the free-text fields of a transfer;
	// NameLenMax an account's name.
	KindLenMax = 32
	RefLenMax  = 64
	NameLenMax = 128
)

// Side is the side of an account's normal balance.
type Side uint8

// Sides.
const (
	// Debit-normal accounts are assets: money the platform holds (a bank or
	// card funding account). Their balance is debits minus credits.
	Debit Side = 1
	// Credit-normal accounts are liabilities: money the platform owes
	// (a payer's wallet, a merchant's earnings, fees). Their balance is
	// credits minus debits.
	Credit Side = 2
)

func (s Side) String() string {
	switch s {
	case Debit:
		return "debit"
	case Credit:
		return "credit"
	}
	return "invalid"
}

// AccountFlags change how an account may be used.
type AccountFlags uint16

// Account flags.
const (
	// Overdraft lets the balance go below zero on its normal side.
	Overdraft       AccountFlags = 1 << iota
	accountFlagsAll              = Overdraft
)

// Balance is an account's four running totals, in minor units. Pending
// amounts are held by open pending transfers; posted amounts are final.
type Balance struct {
	DebitsPending  int64 `json:"debits_pending"`
	DebitsPosted   int64 `json:"debits_posted"`
	CreditsPending int64 `json:"credits_pending"`
	CreditsPosted  int64 `json:"credits_posted"`
}

// Net is credits minus debits posted: what the platform owes the account
// holder. Summed over all accounts of a currency, it is zero.
func (b Balance) Net() int64 { return b.CreditsPosted - b.DebitsPosted }

// Posted is the posted balance on side s.
func (b Balance) Posted(s Side) int64 {
	if s == Debit {
		return b.DebitsPosted - b.CreditsPosted
	}
	return b.CreditsPosted - b.DebitsPosted
}

// Available is the posted balance on side s less what holds against it
// would take.
func (b Balance) Available(s Side) int64 {
	if s == Debit {
		return b.DebitsPosted - b.CreditsPosted - b.CreditsPending
	}
	return b.CreditsPosted - b.DebitsPosted - b.DebitsPending
}

// Account is a ledger account.
type Account struct {
	ID       iotpay.AccountID `json:"id"`
	Tenant   iotpay.TenantID  `json:"tenant"`
	Currency iotpay.Currency  `json:"currency"`
	Normal   Side             `json:"-"`
	Flags    AccountFlags     `json:"-"`
	// Kind says what the account is for (payer, merchant, funding, fees,
	// clearing); the ledger does not interpret it.
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Balance
}

// sameFields reports whether b describes the same account as a (for an
// idempotent create).
func (a *Account) sameFields(b *Account) bool {
	return a.ID == b.ID && a.Tenant == b.Tenant && a.Currency == b.Currency && a.Normal == b.Normal &&
		a.Flags == b.Flags && a.Kind == b.Kind && a.Name == b.Name
}

// fits reports whether b respects a's constraint: no overdraft, counting
// holds against it, unless the account allows one.
func (a *Account) fits(b Balance) bool {
	if a.Flags&Overdraft != 0 {
		return true
	}
	if a.Normal == Debit {
		need, ok := iotpay.AddInt64(b.CreditsPosted, b.CreditsPending)
		return ok && b.DebitsPosted >= need
	}
	need, ok := iotpay.AddInt64(b.DebitsPosted, b.DebitsPending)
	return ok && b.CreditsPosted >= need
}

// TransferFlags say what a transfer does.
type TransferFlags uint16

// Transfer flags.
const (
	// Linked ties a transfer to the next one in the same call: the chain
	// ends at the first transfer without the flag and applies all or
	// nothing.
	Linked TransferFlags = 1 << iota
	// Pending holds the amount: it counts against the debit account's
	// available balance but moves nothing until posted.
	Pending
	// PostPending posts a pending transfer (PendingID), in full or in part;
	// what is not posted is released.
	PostPending
	// VoidPending releases a pending transfer.
	VoidPending
	// Expired marks the transfer the ledger itself writes when a hold's
	// timeout passes; a client may not set it.
	Expired
	transferFlagsAll = Linked | Pending | PostPending | VoidPending | Expired
)

// Transfer is an immutable ledger entry. The client sets the fields up to
// Ref; the ledger sets the rest when it applies the transfer.
type Transfer struct {
	ID       iotpay.TransferID `json:"id"`
	Tenant   iotpay.TenantID   `json:"tenant"`
	Debit    iotpay.AccountID  `json:"debit_account"`
	Credit   iotpay.AccountID  `json:"credit_account"`
	Amount   int64             `json:"amount"`
	Currency iotpay.Currency   `json:"currency"`
	Flags    TransferFlags     `json:"flags"`
	// PendingID is the hold a PostPending or VoidPending resolves. Such a
	// transfer may leave Debit, Credit and Currency empty (they are the
	// hold's) and Amount zero (all of the hold).
	PendingID iotpay.TransferID `json:"pending_id,omitempty"`
	// Timeout is how long a Pending hold stays open; zero is until posted
	// or voided.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Kind says why money moved (fund, authorize, capture, fee, refund…)
	// and Ref what it belongs to (a payment id); the ledger only stores
	// them.
	Kind string `json:"kind,omitempty"`
	Ref  string `json:"ref,omitempty"`

	// Seq is the transfer's position in the ledger's history: unique and
	// increasing. Time is when it was applied.
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	// ExpiresAt is when a hold with a timeout expires.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// DebitBalance and CreditBalance are the two accounts' balances just
	// after this transfer: the history point-in-time balances read.
	DebitBalance  Balance `json:"debit_balance"`
	CreditBalance Balance `json:"credit_balance"`
}

// sameRequest reports whether t (a new request) asks for what stored (an
// applied transfer with the same id) did. A resolution of a hold that left
// the hold's fields empty matches the filled-in stored transfer.
func (t *Transfer) sameRequest(stored *Transfer) bool {
	resolves := t.Flags&(PostPending|VoidPending) != 0
	eqOrEmpty := func(req, have string) bool { return req == have || (resolves && req == "") }
	return t.Tenant == stored.Tenant &&
		eqOrEmpty(string(t.Debit), string(stored.Debit)) &&
		eqOrEmpty(string(t.Credit), string(stored.Credit)) &&
		eqOrEmpty(string(t.Currency), string(stored.Currency)) &&
		(t.Amount == stored.Amount || (resolves && t.Amount == 0)) &&
		t.Flags == stored.Flags && t.PendingID == stored.PendingID && t.Timeout == stored.Timeout &&
		t.Kind == stored.Kind && t.Ref == stored.Ref
}

// Posts reports whether t moved posted money (a plain transfer or the
// posting of a hold).
func (t *Transfer) Posts() bool { return t.Flags&(Pending|VoidPending|Expired) == 0 }

// Errors. Each is an *iotpay.Error, so its code maps to every transport;
// compare with errors.Is.
var (
	ErrIDInvalid         = iotpay.Errorf(iotpay.EINVALID, "transfer id must be an xfr_ id")
	ErrAccountIDInvalid  = iotpay.Errorf(iotpay.EINVALID, "account id must be an acc_ id")
	ErrAccountInvalid    = iotpay.Errorf(iotpay.EINVALID, "account needs a tenant, a known currency, a normal side, known flags and a name of at most 128 bytes")
	ErrAccountExists     = iotpay.Errorf(iotpay.ECONFLICT, "account id exists with other fields")
	ErrAccountNotFound   = iotpay.Errorf(iotpay.EINVALID, "account not found")
	ErrSameAccount       = iotpay.Errorf(iotpay.EINVALID, "debit and credit account are the same")
	ErrAmountInvalid     = iotpay.Errorf(iotpay.EINVALID, "amount must be between 1 and 2^50 minor units")
	ErrCurrencyMismatch  = iotpay.Errorf(iotpay.EINVALID, "currency does not match the accounts")
	ErrFlagsInvalid      = iotpay.Errorf(iotpay.EINVALID, "invalid combination of transfer flags")
	ErrFieldInvalid      = iotpay.Errorf(iotpay.EINVALID, "kind or ref too long, or timeout out of range")
	ErrExists            = iotpay.Errorf(iotpay.ECONFLICT, "transfer id exists with other fields")
	ErrInsufficientFunds = iotpay.Errorf(iotpay.EDECLINED, "insufficient funds")
	ErrExceedsDebits     = iotpay.Errorf(iotpay.EDECLINED, "credit would exceed the account's debits")
	ErrOverflow          = iotpay.Errorf(iotpay.EDECLINED, "balance would overflow")
	ErrPendingNotFound   = iotpay.Errorf(iotpay.EINVALID, "pending transfer not found")
	ErrPendingMismatch   = iotpay.Errorf(iotpay.EINVALID, "fields differ from the pending transfer's")
	ErrPendingPosted     = iotpay.Errorf(iotpay.ECONFLICT, "pending transfer already posted")
	ErrPendingVoided     = iotpay.Errorf(iotpay.ECONFLICT, "pending transfer already voided")
	ErrPendingExpired    = iotpay.Errorf(iotpay.ECONFLICT, "pending transfer expired")
	ErrExceedsPending    = iotpay.Errorf(iotpay.EINVALID, "amount exceeds the pending amount")
	ErrLinkedFailed      = iotpay.Errorf(iotpay.EDECLINED, "another transfer of the linked chain failed")
	ErrLinkedOpen        = iotpay.Errorf(iotpay.EINVALID, "the last transfer of a call may not be linked")
	ErrTooMany           = iotpay.Errorf(iotpay.EINVALID, "too many transfers in one call")
)
