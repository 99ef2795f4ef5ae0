package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/audit/witness"
	"github.com/iotpay/iotpay/internal/atomicfile"
	"github.com/iotpay/iotpay/payment"
	"github.com/iotpay/iotpay/platform"
	"github.com/iotpay/iotpay/platform/pki"
	"github.com/iotpay/iotpay/store/sqlstore"
)

// Files of the audit log's keys in the data directory.
const (
	LogKeyFile      = "log-key"        // the log's Ed25519 note signer key (0600); its name is the log's origin
	LogPubFile      = "log-key.pub"    // the log's verifier key and the SM2 co-signer's, one a line
	GMLogKeyFile    = "gm-log-key.pem" // SM2, co-signs every checkpoint
	LogPathPrefix   = "/log/"          // where the operator HTTP listener serves the log
	witnessTimeout  = 10 * time.Second
	logOriginPrefix = "iotpay-"
)

// auditLog sets up the checkpointer of the audit log: its keys (made at
// first start: the origin is iotpay-<random>/log unless cfg.LogOrigin
// names it), its store through the writer, and the witnesses to push to.
func (d *Daemon) auditLog(read sqlstore.Store[platform.Tx]) error {
	skey, err := loadOrCreateLogKey(filepath.Join(d.cfg.DataDir, LogKeyFile), d.cfg.LogOrigin)
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return iotpay.Wrap(iotpay.EINVALID, "log key", err)
	}
	gmKey, _, err := pki.LoadOrCreateKey(filepath.Join(d.cfg.DataDir, GMLogKeyFile), pki.SuiteGM)
	if err != nil {
		return err
	}
	gmSigner, err := tlog.NewSM2Signer(signer.Name(), gmKey)
	if err != nil {
		return err
	}
	d.LogKey, err = tlog.Ed25519VerifierKey(skey, tlog.TypeEd25519)
	if err != nil {
		return err
	}
	d.GMLogKey = gmSigner.VerifierKey()
	if err := atomicfile.Write(filepath.Join(d.cfg.DataDir, LogPubFile), []byte(d.LogKey+"\n"+d.GMLogKey+"\n"), 0o644); err != nil {
		return err
	}
	var anchors []audit.Anchor
	for _, u := range d.cfg.Witnesses {
		anchors = append(anchors, &witness.Anchor{URL: u, Client: &http.Client{Timeout: witnessTimeout}})
	}
	anchors = append(anchors, d.cfg.Anchors...)
	d.Log = &audit.Checkpointer{
		Store:  platform.WriterStore[audit.LogTx]{W: d.Writer, Read: read},
		Origin: signer.Name(), Signers: []note.Signer{signer, gmSigner}, Anchors: anchors,
		Interval: d.cfg.CheckpointInterval, Logger: d.log.With("component", "audit-log"),
	}
	d.Processor.Log = d.Log
	return nil
}

// startAuditLog runs the checkpointer until Close.
func (d *Daemon) startAuditLog() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d.logStop = func() { cancel(); <-done }
	go func() { defer close(done); d.Log.Run(ctx) }()
}

// logHandler serves the log under LogPathPrefix, the rest to api.
func (d *Daemon) logHandler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(LogPathPrefix, http.StripPrefix(strings.TrimSuffix(LogPathPrefix, "/"), &tlog.Handler{Src: d.Log.Source()}))
	if h := d.stripeHook(); h != nil {
		mux.Handle("POST "+StripeWebhookPath, h)
	}
	mux.Handle("/", api)
	return mux
}

// loadOrCreateLogKey reads the log's note signer key, making one at first
// start.
func loadOrCreateLogKey(path, origin string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return "", iotpay.Errorf(iotpay.EINVALID, "%s is readable by group or others; chmod 600 it", path)
		}
		skey := strings.TrimSpace(string(b))
		if _, err := note.NewSigner(skey); err != nil {
			return "", iotpay.Wrap(iotpay.EINVALID, path+" is not a note signer key", err)
		}
		if origin != "" && !strings.HasPrefix(skey, "PRIVATE+KEY+"+origin+"+") {
			return "", iotpay.Errorf(iotpay.ECONFLICT, "the log key in %s is for another origin than %q: a log's origin never changes", path, origin)
		}
		return skey, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if origin == "" {
		r := make([]byte, 6)
		if _, err := rand.Read(r); err != nil {
			return "", err
		}
		origin = logOriginPrefix + hex.EncodeToString(r) + "/log"
	}
	skey, _, err := tlog.GenerateLogKey(origin)
	if err != nil {
		return "", err
	}
	return skey, atomicfile.WriteNew(path, []byte(skey+"\n"), 0o600)
}

// logPaymentEvent appends an audit leaf for a change to a payment made
// after its decision (a capture, a refund, a void, an increment, an
// expiry, or an authorization the operator asked for), in the operation
// that makes it: outcome = the event, reason = the payment's new status,
// the postings = its transfers that moved money.
// onPaymentEvent records a change to a payment: its audit leaf, and the
// webhook events operators are told of.
func onPaymentEvent(ctx context.Context, tx platform.Tx, kind string, p *payment.Payment) error {
	if err := logPaymentEvent(ctx, tx, kind, p); err != nil {
		return err
	}
	return platform.NotifyPayment(ctx, tx, kind, p, time.Now())
}

func logPaymentEvent(ctx context.Context, tx platform.Tx, kind string, p *payment.Payment) error {
	leaf := &audit.Leaf{Kind: audit.KindOperation, Tenant: string(p.Tenant), Device: string(p.Device), RequestID: p.RequestID,
		RequestHash: p.RequestHash, Outcome: kind, Reason: string(p.Status), Payment: string(p.ID), Amount: p.Amount,
		Currency: string(p.Currency)}
	for _, t := range p.Legs {
		if t.Posts() {
			leaf.Postings = append(leaf.Postings, audit.Posting{Transfer: string(t.ID), Debit: string(t.Debit),
				Credit: string(t.Credit), Amount: t.Amount, Currency: string(t.Currency)})
		}
	}
	_, err := audit.Append(ctx, tx, leaf, time.Now())
	return err
}
