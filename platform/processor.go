package platform

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/payment/ledger"
	"github.com/iotpay/iotpay/platform/decision"
	"github.com/iotpay/iotpay/platform/registry"
	"github.com/iotpay/iotpay/platform/rules"
	"github.com/iotpay/iotpay/platform/webhook"
	"github.com/iotpay/iotpay/wire"
)

// ClockSkewMax is how far a device clock may be from the platform's by default.
const ClockSkewMax = 5 * time.Minute

// Tx is one store transaction over everything a payment touches.
type Tx interface {
	registry.Tx
	payment.Tx
	audit.Tx
	decision.Tx
	webhook.Tx
}

// Store runs functions in transactions.
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	View(ctx context.Context, fn func(Tx) error) error
}

// Processor admits device payment requests and answers each with a signed
// receipt.
type Processor struct {
	// Store reads; every write goes through Engine's single writer.
	Store  Store
	Engine *payment.Engine[Tx]
	// Log answers devices' LogQuery messages (nil: not_found).
	Log LogProver
	// ReceiptSigner signs receipts under ReceiptSuite; devices hold its
	// public key from enrollment.
	ReceiptSigner crypto.Signer
	ReceiptSuite  wire.Suite
	ReceiptKid    []byte
	// GMReceiptSigner (SM2) signs receipts to gm devices, under wire.GM,
	// with GMReceiptKid; answers that cannot name a device's suite (a
	// malformed request) are signed with ReceiptSigner.
	GMReceiptSigner crypto.Signer
	GMReceiptKid    []byte
	ClockSkew       time.Duration
	Logger          *slog.Logger
	Now             func() time.Time
	Rand            io.Reader
	// Sessions holds the devices' end-to-end sessions (session.go); nil
	// means a table with the default bounds, made at first use.
	Sessions     *Sessions
	sessionsOnce sync.Once
	// Profiles compiles products' rules and risk policies; nil means a
	// cache of its own, made at first use.
	Profiles     *Profiles
	profilesOnce sync.Once
	// OnOrder, when set, is called after a batch placed a refill order,
	// so the sender need not wait for its next poll.
	OnOrder func()
	// keys holds active devices' verification keys (devicekeys.go).
	keys deviceKeys
	// relayed remembers which gateway first relayed a message, and kinds
	// the products' kinds (relay.go).
	relayed relaySeen
	kinds   sync.Map // iotpay.ProductID → registry.ProductKind
}

func (p *Processor) profiles() *Profiles {
	p.profilesOnce.Do(func() {
		if p.Profiles == nil {
			p.Profiles = &Profiles{}
		}
	})
	return p.Profiles
}

// Result is what happened to one message.
type Result struct {
	Receipt   []byte       // signed answer for the device; nil when none can be made
	Outcome   wire.Outcome // approved, declined or rejected
	Code      iotpay.Code  // for declines and rejections
	Reason    string
	Duplicate bool // a redelivery answered with the original receipt
	Payment   iotpay.PaymentID
	Action    string // what the product's rules made of the event
}

func (p *Processor) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Processor) rand() io.Reader {
	if p.Rand != nil {
		return p.Rand
	}
	return rand.Reader
}

func (p *Processor) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// HandlePay processes one message from a device and returns the receipt to
// send back (nil when none can be made). It implements the transports'
// handler interface. A session's messages come on the same channel: a
// COSE_Encrypt0 is a sealed request, a hello starts a session.
func (p *Processor) HandlePay(ctx context.Context, device iotpay.DeviceID, raw []byte) []byte {
	switch {
	case wire.IsEncrypt0(raw):
		return p.ProcessSealed(ctx, device, raw).Receipt
	case wire.IsHello(raw):
		return p.Handshake(ctx, device, raw).Receipt
	case wire.IsLogQuery(raw):
		return p.answerLog(ctx, device, raw)
	}
	return p.Process(ctx, device, raw).Receipt
}

// LogProver proves a leaf is in the audit log (audit.Checkpointer).
type LogProver interface {
	ProveLeaf(ctx context.Context, index, trusted uint64) (checkpoint, leaf []byte, inclusion, consistency [][]byte, err error)
}

// answerLog answers a device's LogQuery on its channel with the proofs of
// a leaf, or an error answer (not_found until a checkpoint covers it). The
// answer needs no signature: the checkpoint is signed by the log key and
// the proofs verify against it.
func (p *Processor) answerLog(ctx context.Context, device iotpay.DeviceID, raw []byte) []byte {
	ans := wire.LogProof{}
	q, err := wire.ParseLogQuery(raw)
	if err == nil {
		ans.Index = q.Index
		if p.Log == nil {
			err = iotpay.Errorf(iotpay.ENOTFOUND, "no audit log here")
		} else {
			ans.Checkpoint, ans.Leaf, ans.Inclusion, ans.Consistency, err = p.Log.ProveLeaf(ctx, q.Index, q.Trusted)
		}
	}
	if err != nil {
		p.log().Info("log query refused", "device", device, "err", err)
		ans = wire.LogProof{Index: ans.Index, Code: string(iotpay.ErrorCode(err)), Reason: iotpay.ErrorMessage(err)}
	}
	b, err := wire.EncodeLogProof(ans)
	if err != nil {
		p.log().Error("cannot encode a log proof", "device", device, "err", err)
		return nil
	}
	return b
}

// rejection is a refusal of an authenticated request before any state
// changed; it is logged as an audit leaf of its own.
type rejection struct{ err error }

func (r *rejection) Error() string { return r.err.Error() }

// Unwrap gives the rejection its code: a refusal, which leaves the
// writer's batch alone.
func (r *rejection) Unwrap() error { return r.err }

// Process admits raw, a signed request that arrived on the channel the
// transport authenticated as device, and decides it. Checks run in a fixed
// order: form, identity and signature, then (in the write transaction)
// idempotency, time window, counter and challenge; only then the decision.
func (p *Processor) Process(ctx context.Context, device iotpay.DeviceID, raw []byte) Result {
	suite := wire.Intl
	env, req, err := wire.ParseRequest(raw)
	if err == nil && iotpay.DeviceID(req.Device) != device {
		p.log().Warn("request names another device than its channel", "device", device, "claimed", req.Device)
		err = iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed")
	} else if err != nil {
		p.log().Info("request refused", "device", device, "err", err)
		req = nil
	}
	if err != nil {
		// Answered in the suite of the device the transport authenticated,
		// so that a gm device can check the refusal too.
		suite = p.channelSuite(ctx, device)
		return p.reject(suite, device, suite.Hash(raw), req, nil, err)
	}
	k, cached, err := p.deviceKey(ctx, device)
	if err != nil {
		return p.reject(suite, device, suite.Hash(raw), req, nil, err)
	}
	err = env.Verify(k.suite, k.key)
	if err != nil && cached {
		// The kept key may be one the device no longer has: read it again.
		p.keys.forget(device)
		if k, _, err = p.deviceKey(ctx, device); err != nil {
			return p.reject(suite, device, suite.Hash(raw), req, nil, err)
		}
		err = env.Verify(k.suite, k.key)
	}
	suite = k.suite
	rh := suite.Hash(raw)
	if err != nil {
		p.log().Warn("request signature refused", "device", device, "suite", suite.Name(), "alg", env.Alg, "err", err)
		return p.reject(suite, device, rh, req, nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed"))
	}
	dev := k.dev

	// A sale from an instrument at an external payment system is
	// authorized there first, outside the writer.
	pre, err := p.preflight(ctx, dev, req)
	if err != nil {
		p.log().Warn("request not routed", "device", device, "request", req.RequestID, "err", err)
		return p.reject(suite, device, rh, req, nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "payment system unavailable, try again later", err))
	}
	defer p.settle(ctx, pre)
	if pre != nil {
		ctx = context.WithValue(ctx, routedKey{}, pre)
	}

	// Authenticated: from here on every outcome is in the audit log.
	var res Result
	err = p.Engine.Do(ctx, func(b *ledger.Batch[Tx]) error {
		var err error
		res, err = p.decide(b, raw, rh, req, k)
		return err
	})
	var rej *rejection
	switch {
	case errors.As(err, &rej):
		p.log().Info("request rejected", "device", device, "request", req.RequestID, "err", rej.err)
		return p.rejectLogged(ctx, suite, dev, raw, rh, req, rej.err)
	case err != nil:
		p.log().Error("request failed", "device", device, "request", req.RequestID, "err", err)
		return p.reject(suite, device, rh, req, nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "try again later", err))
	}
	if res.Action == string(rules.Refill) && !res.Duplicate && p.OnOrder != nil {
		p.OnOrder()
	}
	return res
}

// device loads an enrolled, active device; any failure is the same vague
// refusal.
func (p *Processor) device(ctx context.Context, id iotpay.DeviceID) (*registry.Device, error) {
	var d *registry.Device
	err := p.Store.View(ctx, func(tx Tx) (err error) { d, err = tx.Device(ctx, id); return })
	if err != nil || d.Status != registry.DeviceActive {
		if err != nil && iotpay.ErrorCode(err) != iotpay.ENOTFOUND {
			p.log().Error("device lookup failed", "device", id, "err", err)
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "try again later", err)
		}
		p.log().Warn("request from a device that may not pay", "device", id, "err", err)
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed")
	}
	return d, nil
}

// channelSuite is the suite of the device a transport authenticated, for
// answering a request that names no device of its own; intl when unknown.
func (p *Processor) channelSuite(ctx context.Context, id iotpay.DeviceID) wire.Suite {
	var d *registry.Device
	if p.Store.View(ctx, func(tx Tx) (err error) { d, err = tx.Device(ctx, id); return }) != nil {
		return wire.Intl
	}
	s, err := wire.SuiteByName(d.Suite)
	if err != nil {
		return wire.Intl
	}
	return s
}

// decide runs in the writer: verified is the key the request's signature
// was checked with, outside the writer, which must still be the device's.
func (p *Processor) decide(b *ledger.Batch[Tx], raw, rh []byte, req *wire.Request, verified *deviceKey) (Result, error) {
	ctx, tx, now := b.Context(), b.Tx, b.Now
	dev, err := tx.Device(ctx, iotpay.DeviceID(req.Device))
	if err != nil {
		return Result{}, err
	}
	if dev.Status != registry.DeviceActive || !verified.still(dev) {
		p.keys.forget(dev.ID)
		return Result{}, &rejection{iotpay.Errorf(iotpay.EUNAUTHORIZED, "verification failed")}
	}
	prev, err := tx.PaymentByRequest(ctx, dev.ID, req.RequestID)
	switch {
	case err == nil && bytes.Equal(prev.RequestHash, rh):
		return Result{Receipt: prev.Receipt, Outcome: outcomeOf(prev.Status), Duplicate: true, Payment: prev.ID, Reason: prev.Reason}, nil
	case err == nil:
		return Result{}, &rejection{iotpay.Errorf(iotpay.EREPLAY, "request id already used for another request")}
	case iotpay.ErrorCode(err) != iotpay.ENOTFOUND:
		return Result{}, err
	}
	// A request that made no payment of its own (a report, a session's
	// increment or capture, a refill) is kept apart.
	prevReq, err := tx.DecisionRequest(ctx, dev.ID, req.RequestID)
	switch {
	case err == nil && bytes.Equal(prevReq.RequestHash, rh):
		return Result{Receipt: prevReq.Receipt, Outcome: wire.Outcome(prevReq.Outcome), Duplicate: true, Payment: prevReq.Payment,
			Action: prevReq.Action}, nil
	case err == nil:
		return Result{}, &rejection{iotpay.Errorf(iotpay.EREPLAY, "request id already used for another request")}
	case iotpay.ErrorCode(err) != iotpay.ENOTFOUND:
		return Result{}, err
	}
	skew := p.ClockSkew
	if skew == 0 {
		skew = ClockSkewMax
	}
	// An offline payment reaches the platform late, through a gateway's
	// store, and echoes the last challenge the device had, not the
	// current one: its counter alone keeps it from being replayed.
	offline := req.Offline
	if d := req.Time().Sub(now); d > skew || (d < -skew && (!offline || d < -OfflineAgeMax)) {
		return Result{}, &rejection{iotpay.Errorf(iotpay.EINVALID, "device clock off by %v", d.Round(time.Second))}
	}
	if req.Counter <= dev.Counter {
		return Result{}, &rejection{iotpay.Errorf(iotpay.EREPLAY, "counter %d not above %d", req.Counter, dev.Counter)}
	}
	if !offline && !bytes.Equal(req.Challenge, dev.Challenge) {
		return Result{}, &rejection{iotpay.Errorf(iotpay.EREPLAY, "stale challenge")}
	}
	prod, err := tx.Product(ctx, dev.Tenant, dev.Product)
	if err != nil {
		return Result{}, err
	}
	if offline && prod.Offline == nil {
		return Result{}, &rejection{iotpay.Errorf(iotpay.EINVALID, "product %s takes no offline payments", prod.Name)}
	}
	prof, err := p.profiles().Get(ctx, tx, prod)
	if err != nil {
		if iotpay.ErrorCode(err) == iotpay.EINVALID {
			// The stored profile no longer compiles (a tariff it names
			// changed): the device is refused until the operator mends it.
			p.log().Error("product profile does not compile", "product", prod.ID, "err", err)
			return Result{}, &rejection{iotpay.Errorf(iotpay.EUNAVAILABLE, "product rules unavailable")}
		}
		return Result{}, err
	}
	st, err := registry.LoadState(ctx, tx, dev.ID)
	if err != nil {
		return Result{}, err
	}
	// The report is applied first, so the rules and the risk policy see
	// the state the device signed with this request.
	var noticed []*decision.Event
	if req.Report != nil {
		tampered, unattested := registry.ApplyReport(st, req.Report, prof.Firmware, now)
		if tampered {
			noticed = append(noticed, &decision.Event{Kind: decision.EventTamper, Detail: "the device reports tampering"})
		}
		if unattested {
			noticed = append(noticed, &decision.Event{Kind: decision.EventFirmware,
				Detail: "firmware " + st.Firmware + " is not on the product's allowed list"})
		}
	}
	a, sess, sessPay, err := evaluateInSession(ctx, tx, prof, prod, dev, st, req, now)
	if err == nil && a.Kind == rules.Hold && sessPay != nil {
		err = iotpay.Errorf(iotpay.ECONFLICT, "session %q is already open", a.Session)
	}
	if err != nil {
		return Result{}, &rejection{err}
	}

	// Admitted: the device's state moves on whatever the decision. From
	// here on only a store failure may stop the operation.
	lastSeen := dev.LastSeen
	dev.Counter = req.Counter
	if !offline {
		// An offline payment leaves the challenge as it is: the device's
		// next offline payments echo that one too.
		dev.Challenge = p.challenge()
	}
	dev.LastSeen = now
	breach, offlineMoved := countOffline(st, prod, req)
	if err := tx.UpdateDevice(ctx, dev); err != nil {
		return Result{}, err
	}
	for _, e := range noticed {
		e.ID, e.Tenant, e.Device, e.Created = p.newEventID(iotpay.PrefixEvent, now), dev.Tenant, dev.ID, now
		if err := RaiseEvent(ctx, tx, e); err != nil {
			return Result{}, err
		}
	}
	res, err := p.act(b, dev, prod, prof, st, req, raw, rh, a, sess, sessPay, lastSeen, breach)
	if err != nil {
		return Result{}, err
	}
	wasInactive := !st.Inactive.IsZero()
	st.Inactive = time.Time{}
	if req.Report != nil || wasInactive || st.Version == 0 || a.Kind == rules.Bill || res.Payment != "" || offlineMoved {
		if st.Version == 0 {
			st.Version = 1
		}
		st.Updated = now
		if err := tx.PutState(ctx, st); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// receipted is a request's evidence: its signed receipt and the index of
// its decision's audit leaf.
type receipted struct {
	receipt []byte
	index   uint64
	outcome wire.Outcome
	code    string
}

// evidence appends the audit leaf of a decided request (the request as
// signed, the decision and its reasons, the postings) and signs its
// receipt, then appends the receipt as a leaf too.
func (p *Processor) evidence(ctx context.Context, tx Tx, dev *registry.Device, st *registry.State, req *wire.Request, raw, rh []byte,
	out *outcome, now time.Time) (*receipted, error) {
	leaf := &audit.Leaf{Kind: audit.KindPayment, Tenant: string(dev.Tenant), Device: string(dev.ID), RequestID: req.RequestID,
		RequestHash: rh, Request: raw, Amount: out.amount, Currency: string(out.currency),
		Outcome: outcomeLeaf(out.status), Reason: out.reason, Decision: out.dec.json()}
	rc := &wire.Receipt{
		Device: string(dev.ID), RequestID: req.RequestID, RequestHash: rh, Outcome: out.status, Code: string(out.code),
		Reason: out.reason, AmountMinor: out.amount, Challenge: dev.Challenge, Action: string(out.dec.Action.Kind),
	}
	if out.amount != 0 {
		rc.Currency = string(out.currency)
	}
	if out.pay != nil {
		leaf.Payment, rc.PaymentID = string(out.pay.ID), string(out.pay.ID)
	}
	for _, t := range out.legs {
		rc.Transfers = append(rc.Transfers, string(t.ID))
		if t.Posts() {
			leaf.Postings = append(leaf.Postings, audit.Posting{Transfer: string(t.ID), Debit: string(t.Debit),
				Credit: string(t.Credit), Amount: t.Amount, Currency: string(t.Currency)})
		}
	}
	suite, err := wire.SuiteByName(dev.Suite)
	if err != nil {
		return nil, err
	}
	if st.Applied < st.DesiredVersion {
		if rc.Desired, err = p.SignDesired(suite, st, now); err != nil {
			return nil, err
		}
	}
	idx, err := audit.Append(ctx, tx, leaf, now)
	if err != nil {
		return nil, err
	}
	rc.LogIndex = &idx
	b, err := p.sign(suite, rc, now)
	if err != nil {
		return nil, err
	}
	// The receipt, as the device gets it, is a leaf of its own, just after
	// the one it names (it is signed once that leaf's index is known).
	if _, err := audit.Append(ctx, tx, &audit.Leaf{Kind: audit.KindReceipt, Tenant: string(dev.Tenant), Device: string(dev.ID),
		RequestID: req.RequestID, RequestHash: rh, Outcome: leaf.Outcome, Payment: leaf.Payment, Receipt: b}, now); err != nil {
		return nil, err
	}
	return &receipted{receipt: b, index: idx, outcome: rc.Outcome, code: rc.Code}, nil
}

// SignDesired signs a device's desired state for it, under its suite.
func (p *Processor) SignDesired(suite wire.Suite, st *registry.State, now time.Time) ([]byte, error) {
	d := &wire.Desired{Device: string(st.Device), Version: st.DesiredVersion, TimeMs: now.UnixMilli()}
	for k, v := range st.Desired {
		switch v := v.(type) {
		case float64:
			if d.Num == nil {
				d.Num = map[string]int64{}
			}
			d.Num[k] = int64(v)
		case string:
			if d.Str == nil {
				d.Str = map[string]string{}
			}
			d.Str[k] = v
		case bool:
			if d.Num == nil {
				d.Num = map[string]int64{}
			}
			d.Num[k] = map[bool]int64{false: 0, true: 1}[v]
		}
	}
	if suite == wire.GM {
		if p.GMReceiptSigner == nil {
			return nil, iotpay.Errorf(iotpay.EINTERNAL, "no gm receipt key")
		}
		return wire.SignDesired(wire.GM, p.GMReceiptSigner, p.rand(), p.GMReceiptKid, d)
	}
	return wire.SignDesired(p.ReceiptSuite, p.ReceiptSigner, p.rand(), p.ReceiptKid, d)
}

// outcomeLeaf is the outcome an audit leaf records for a decided request.
func outcomeLeaf(o wire.Outcome) string {
	switch o {
	case wire.Declined:
		return string(payment.StatusDeclined)
	case wire.Review:
		return string(wire.Review)
	}
	return "approved"
}

func outcomeOf(s payment.Status) wire.Outcome {
	if s == payment.StatusDeclined {
		return wire.Declined
	}
	return wire.Approved
}

// rejectLogged records the refusal of an authenticated request as an audit
// leaf, then answers it. Nothing else changes: no balance, no device state.
func (p *Processor) rejectLogged(ctx context.Context, suite wire.Suite, dev *registry.Device, raw, rh []byte, req *wire.Request, cause error) Result {
	now := p.now()
	var res Result
	err := p.Engine.Do(ctx, func(b *ledger.Batch[Tx]) error {
		tx := b.Tx
		cur, err := tx.Device(ctx, dev.ID)
		if err != nil {
			return err
		}
		idx, err := audit.Append(ctx, tx, &audit.Leaf{Kind: audit.KindRejection, Tenant: string(dev.Tenant), Device: string(dev.ID),
			RequestID: req.RequestID, RequestHash: rh, Request: raw, Outcome: string(wire.Rejected),
			Reason: string(iotpay.ErrorCode(cause)) + ": " + iotpay.ErrorMessage(cause)}, now)
		if err != nil {
			return err
		}
		// The current challenge lets a device that lost its state
		// resynchronise. The receipt is logged too, as for a payment.
		res = p.rejectWithChallenge(suite, dev.ID, rh, req, &idx, cause, cur.Challenge)
		if res.Receipt == nil {
			return iotpay.Errorf(iotpay.EINTERNAL, "rejection receipt not signed")
		}
		_, err = audit.Append(ctx, tx, &audit.Leaf{Kind: audit.KindReceipt, Tenant: string(dev.Tenant), Device: string(dev.ID),
			RequestID: req.RequestID, RequestHash: rh, Outcome: string(wire.Rejected), Receipt: res.Receipt}, now)
		return err
	})
	if err != nil {
		p.log().Error("cannot log rejection", "device", dev.ID, "err", err)
		return p.reject(suite, dev.ID, rh, req, nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "try again later", err))
	}
	return res
}

// reject answers a refused request with a receipt signed under suite and
// changes nothing.
func (p *Processor) reject(suite wire.Suite, device iotpay.DeviceID, rh []byte, req *wire.Request, idx *uint64, cause error) Result {
	return p.rejectWithChallenge(suite, device, rh, req, idx, cause, nil)
}

func (p *Processor) rejectWithChallenge(suite wire.Suite, device iotpay.DeviceID, rh []byte, req *wire.Request, idx *uint64, cause error, challenge []byte) Result {
	code, msg := iotpay.ErrorCode(cause), iotpay.ErrorMessage(cause)
	rc := &wire.Receipt{Device: string(device), RequestHash: rh, Outcome: wire.Rejected, Code: string(code), Reason: msg, LogIndex: idx, Challenge: challenge}
	if req != nil {
		rc.RequestID = req.RequestID
	}
	b, err := p.sign(suite, rc, p.now())
	if err != nil {
		p.log().Error("cannot sign receipt", "device", device, "err", err)
	}
	return Result{Receipt: b, Outcome: wire.Rejected, Code: code, Reason: msg}
}

// sign signs a receipt to a device of suite with the platform's key of that
// suite.
func (p *Processor) sign(suite wire.Suite, rc *wire.Receipt, now time.Time) ([]byte, error) {
	rc.V = wire.Version
	rc.TimeMs = now.UnixMilli()
	if suite == wire.GM {
		if p.GMReceiptSigner == nil {
			return nil, iotpay.Errorf(iotpay.EINTERNAL, "no gm receipt key")
		}
		return wire.SignReceipt(wire.GM, p.GMReceiptSigner, p.rand(), p.GMReceiptKid, rc)
	}
	return wire.SignReceipt(p.ReceiptSuite, p.ReceiptSigner, p.rand(), p.ReceiptKid, rc)
}

func (p *Processor) challenge() []byte {
	c := make([]byte, wire.ChallengeBytes)
	if _, err := io.ReadFull(p.rand(), c); err != nil {
		panic("platform: randomness source failed: " + err.Error())
	}
	return c
}
