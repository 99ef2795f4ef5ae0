// Package witness is a transparency-log witness speaking the C2SP
// tlog-witness protocol (https://c2sp.org/tlog-witness), and the client the
// platform uses to have its checkpoints co-signed.
//
// A witness keeps, for each log it knows, the latest checkpoint it has
// co-signed, on disk. It co-signs a new checkpoint only if the log's key
// signed it and a consistency proof shows it extends the one it holds, so
// a log that shows two different trees (a split view) to two parties
// cannot have both co-signed by the same witness. Its co-signatures are
// C2SP tlog-cosignature v1 (timestamped Ed25519). The operator, a
// regulator or anyone else can run one with `iotpay witness`.
package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/internal/atomicfile"
)

// Protocol bounds.
const (
	// BodyBytesMax bounds an add-checkpoint request: a checkpoint and a
	// proof of at most 63 hashes.
	BodyBytesMax   = tlog.CheckpointBytesMax + 64*48
	proofHashesMax = 63
	// AddCheckpointPath is the endpoint under the witness's URL.
	AddCheckpointPath = "/add-checkpoint"
	// SizeContentType is the content type of a 409 answer's body, the size
	// of the latest checkpoint the witness holds.
	SizeContentType = "text/x.tlog.size"
)

// ConflictError is the witness's refusal of a request whose old size is not
// the size of the checkpoint it holds (or, for an equal size, whose hash
// differs): Size is the size it holds, from which the log should prove
// consistency.
type ConflictError struct {
	Size uint64
	// SplitView is set when the checkpoint has the size of the one held
	// but another root hash: evidence of a split view.
	SplitView bool
}

func (e *ConflictError) Error() string {
	if e.SplitView {
		return fmt.Sprintf("witness: a different checkpoint of size %d was co-signed already (split view)", e.Size)
	}
	return fmt.Sprintf("witness: the latest checkpoint co-signed has size %d", e.Size)
}

// ErrInconsistent is the cause of a refusal whose consistency proof does
// not verify: the log's new tree does not extend the one co-signed.
var ErrInconsistent = errors.New("the consistency proof does not verify")

// conflict wraps a ConflictError as an iotpay conflict.
func conflict(size uint64, split bool) error {
	e := &ConflictError{Size: size, SplitView: split}
	return iotpay.Wrap(iotpay.ECONFLICT, e.Error(), e)
}

// Witness co-signs checkpoints of the logs it knows.
type Witness struct {
	signer note.Signer
	logs   map[string]note.Verifier // origin → the log's key
	dir    string
	log    *slog.Logger

	mu     sync.Mutex
	latest map[string]tlog.Checkpoint // origin → latest co-signed
}

// New returns a witness signing with skey (an Ed25519 note signer key; its
// co-signatures are cosignature/v1), knowing the logs whose verifier keys
// are given (a log's origin is its key's name), and keeping its state in
// dir (created 0700).
func New(dir, skey string, logKeys []string, logger *slog.Logger) (*Witness, error) {
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "witness: signer key", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Witness{signer: signer, logs: map[string]note.Verifier{}, dir: dir, log: logger.With("component", "witness"),
		latest: map[string]tlog.Checkpoint{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "witness: state directory", err)
	}
	for _, k := range logKeys {
		v, err := tlog.NewVerifier(k)
		if err != nil {
			return nil, err
		}
		w.logs[v.Name()] = v
		b, err := os.ReadFile(w.stateFile(v.Name()))
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return nil, iotpay.Wrap(iotpay.EINTERNAL, "witness: read state", err)
		}
		cp, _, err := tlog.OpenCheckpoint(b, v)
		if err != nil {
			return nil, iotpay.Wrap(iotpay.EINTERNAL, "witness: the state of log "+v.Name()+" does not verify", err)
		}
		w.latest[v.Name()] = cp
	}
	return w, nil
}

// VerifierKey returns the verifier key of a witness signer key, for logs
// and verifiers to check its co-signatures with (cosignature/v1, type 0x04).
func VerifierKey(skey string) (string, error) {
	if _, err := fnote.NewSignerForCosignatureV1(skey); err != nil {
		return "", iotpay.Wrap(iotpay.EINVALID, "witness: signer key", err)
	}
	return tlog.Ed25519VerifierKey(skey, tlog.TypeCosignatureV1)
}

// Name is the witness's key name.
func (w *Witness) Name() string { return w.signer.Name() }

func (w *Witness) stateFile(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return filepath.Join(w.dir, "log-"+hex.EncodeToString(h[:8])+".checkpoint")
}

// Latest returns the latest checkpoint co-signed for origin.
func (w *Witness) Latest(origin string) (tlog.Checkpoint, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cp, ok := w.latest[origin]
	return cp, ok
}

// Add co-signs checkpoint if the log's key signed it and proof shows it is
// consistent with the checkpoint of oldSize the witness holds (0 if none).
// It returns the co-signature as note signature lines.
func (w *Witness) Add(oldSize uint64, proof [][]byte, checkpoint []byte) ([]byte, error) {
	text, _, ok := bytes.Cut(checkpoint, []byte("\n\n"))
	if !ok {
		return nil, iotpay.Errorf(iotpay.EINVALID, "witness: checkpoint is not a signed note")
	}
	origin, _, _ := bytes.Cut(text, []byte("\n"))
	v, ok := w.logs[string(origin)]
	if !ok {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "witness: unknown log %q", origin)
	}
	cp, _, err := tlog.OpenCheckpoint(checkpoint, v)
	if err != nil {
		return nil, err
	}
	if cp.Size < oldSize {
		return nil, iotpay.Errorf(iotpay.EINVALID, "witness: checkpoint size %d is below the old size %d", cp.Size, oldSize)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	held, has := w.latest[cp.Origin]
	if held.Size != oldSize || (!has && oldSize != 0) {
		return nil, conflict(held.Size, false)
	}
	if has && cp.Size == held.Size {
		if !bytes.Equal(cp.Hash, held.Hash) {
			w.log.Warn("split view: two checkpoints of one size", "origin", cp.Origin, "size", cp.Size)
			return nil, conflict(held.Size, true)
		}
	} else if has && held.Size > 0 {
		if err := tlog.VerifyConsistency(held.Size, cp.Size, proof, held.Hash, cp.Hash); err != nil {
			w.log.Warn("inconsistent checkpoint refused", "origin", cp.Origin, "from", held.Size, "to", cp.Size, "err", err)
			return nil, iotpay.Wrap(iotpay.EINVALID, "witness: the consistency proof does not verify", errors.Join(ErrInconsistent, err))
		}
	}
	cosigned, err := note.Sign(&note.Note{Text: string(text) + "\n"}, w.signer)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "witness: co-sign", err)
	}
	if !has || cp.Size > held.Size {
		if err := atomicfile.Write(w.stateFile(cp.Origin), checkpoint, 0o600); err != nil {
			return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "witness: cannot save state", err)
		}
		w.latest[cp.Origin] = cp
	}
	_, sigs, _ := bytes.Cut(cosigned, []byte("\n\n"))
	return sigs, nil
}

// ServeHTTP serves POST /add-checkpoint.
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != AddCheckpointPath {
		http.NotFound(rw, r)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, BodyBytesMax))
	if err != nil {
		http.Error(rw, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	oldSize, proof, checkpoint, err := ParseAddCheckpoint(body)
	if err == nil {
		var sigs []byte
		if sigs, err = w.Add(oldSize, proof, checkpoint); err == nil {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = rw.Write(sigs)
			return
		}
	}
	var conflict *ConflictError
	if errors.As(err, &conflict) {
		rw.Header().Set("Content-Type", SizeContentType)
		rw.WriteHeader(http.StatusConflict)
		_, _ = fmt.Fprintf(rw, "%d\n", conflict.Size)
		return
	}
	status := map[iotpay.Code]int{
		iotpay.EINVALID: http.StatusBadRequest, iotpay.ENOTFOUND: http.StatusNotFound, iotpay.EUNAUTHORIZED: http.StatusForbidden,
	}[iotpay.ErrorCode(err)]
	if errors.Is(err, ErrInconsistent) {
		status = http.StatusUnprocessableEntity
	} else if status == 0 {
		status = http.StatusServiceUnavailable
	}
	http.Error(rw, iotpay.ErrorMessage(err), status)
}

// FormatAddCheckpoint writes an add-checkpoint request body: "old <size>",
// the proof's hashes in base64 one a line, a blank line, the checkpoint.
func FormatAddCheckpoint(oldSize uint64, proof [][]byte, checkpoint []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(checkpoint)
	return b.Bytes()
}

// ParseAddCheckpoint reads an add-checkpoint request body strictly.
func ParseAddCheckpoint(body []byte) (oldSize uint64, proof [][]byte, checkpoint []byte, err error) {
	bad := func(why string) (uint64, [][]byte, []byte, error) {
		return 0, nil, nil, iotpay.Errorf(iotpay.EINVALID, "witness: request: %s", why)
	}
	head, checkpoint, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return bad("no blank line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	sz, ok := strings.CutPrefix(lines[0], "old ")
	if oldSize, err = strconv.ParseUint(sz, 10, 64); !ok || err != nil || strconv.FormatUint(oldSize, 10) != sz {
		return bad("first line must be old <size>")
	}
	if len(lines)-1 > proofHashesMax {
		return bad("proof too long")
	}
	for _, l := range lines[1:] {
		h, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(h) != tlog.HashSize || strings.ContainsAny(l, "\r\n") {
			return bad("a proof line is not a 32-byte hash in base64")
		}
		proof = append(proof, h)
	}
	if len(checkpoint) == 0 {
		return bad("no checkpoint")
	}
	return oldSize, proof, checkpoint, nil
}

// AddCheckpoint asks the witness at url to co-sign checkpoint, proving its
// consistency with the witness's checkpoint of oldSize. It returns the
// co-signature lines, or a *ConflictError carrying the size the witness
// holds (ask again with a proof from there), or another typed error.
func AddCheckpoint(ctx context.Context, client *http.Client, url string, oldSize uint64, proof [][]byte, checkpoint []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(url, "/")+AddCheckpointPath,
		bytes.NewReader(FormatAddCheckpoint(oldSize, proof, checkpoint)))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "witness: url", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "witness: unreachable", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "witness: reading the answer", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusConflict:
		s := strings.TrimSpace(string(body))
		size, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, iotpay.Errorf(iotpay.EUNAVAILABLE, "witness: 409 without a size")
		}
		return nil, conflict(size, false)
	case http.StatusNotFound:
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "witness: does not know this log: %s", strings.TrimSpace(string(body)))
	case http.StatusForbidden:
		return nil, iotpay.Errorf(iotpay.EUNAUTHORIZED, "witness: refused the log's signature: %s", strings.TrimSpace(string(body)))
	case http.StatusUnprocessableEntity:
		return nil, iotpay.Wrap(iotpay.EINVALID, "witness: inconsistent checkpoint: "+strings.TrimSpace(string(body)), ErrInconsistent)
	case http.StatusBadRequest:
		return nil, iotpay.Errorf(iotpay.EINVALID, "witness: bad request: %s", strings.TrimSpace(string(body)))
	}
	return nil, iotpay.Errorf(iotpay.EUNAVAILABLE, "witness: status %d", resp.StatusCode)
}

// CoSign appends a witness's co-signature lines to a signed checkpoint.
func CoSign(checkpoint, sigLines []byte) []byte {
	return append(bytes.Clone(checkpoint), sigLines...)
}

// Anchor is a witness as the log's checkpointer pushes to it
// (audit.Anchor): it remembers the size the witness holds, learns it from
// a 409 when it does not know it, and proves consistency from there.
type Anchor struct {
	URL    string
	Client *http.Client

	mu   sync.Mutex
	size uint64 // the size the witness is believed to hold
}

// Name is the witness's URL.
func (a *Anchor) Name() string { return "witness " + a.URL }

// Push asks the witness to co-sign signed and returns its signature lines.
func (a *Anchor) Push(ctx context.Context, signed []byte, cp tlog.Checkpoint, proof func(old uint64) ([][]byte, error)) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	client := a.Client
	if client == nil {
		client = http.DefaultClient
	}
	for try := 0; ; try++ {
		old := min(a.size, cp.Size)
		var p [][]byte
		if old > 0 && old < cp.Size {
			var err error
			if p, err = proof(old); err != nil {
				return nil, err
			}
		}
		sigs, err := AddCheckpoint(ctx, client, a.URL, old, p, signed)
		var ce *ConflictError
		if errors.As(err, &ce) && try == 0 && ce.Size != old && ce.Size <= cp.Size {
			a.size = ce.Size // ask again from the size it holds
			continue
		}
		if err != nil {
			return nil, err
		}
		a.size = cp.Size
		return sigs, nil
	}
}
