package tlog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/iotpay/iotpay"
)

// Source is what the log's HTTP handler serves from.
type Source interface {
	TileReader
	// ReadEntries returns the n leaves from start, each as appended.
	ReadEntries(ctx context.Context, start uint64, n int) ([][]byte, error)
	// Checkpoint returns the latest signed checkpoint, with its co-signatures,
	// and its size.
	Checkpoint(ctx context.Context) (signed []byte, size uint64, err error)
}

// Handler serves a log in the C2SP tlog-tiles layout, under whatever
// prefix it is mounted at (the prefix stripped):
//
//	GET checkpoint                         the latest signed checkpoint
//	GET tile/<L>/<N>[.p/<W>]               hash tiles
//	GET tile/entries/<N>[.p/<W>]           entry bundles
//	GET proof/inclusion?index=I&size=S     {"index","size","hashes":[base64…]}
//	GET proof/consistency?old=O&size=S     {"old","size","hashes":[base64…]}
//
// Full tiles and bundles never change and are served as immutable; the
// checkpoint and partial tiles are fresh for a second.
type Handler struct {
	Src Source
}

// Proof is the JSON body of the proof endpoints.
type Proof struct {
	Index  *uint64  `json:"index,omitempty"`
	Old    *uint64  `json:"old,omitempty"`
	Size   uint64   `json:"size"`
	Hashes []string `json:"hashes"`
}

// DecodeHashes returns the proof's hashes, each 32 bytes.
func (p *Proof) DecodeHashes() ([][]byte, error) {
	if len(p.Hashes) > 64 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: proof of %d hashes", len(p.Hashes))
	}
	out := make([][]byte, len(p.Hashes))
	for i, h := range p.Hashes {
		b, err := base64.StdEncoding.Strict().DecodeString(h)
		if err != nil || len(b) != HashSize {
			return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: proof hash %d is not 32 bytes of base64", i)
		}
		out[i] = b
	}
	return out, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	p := strings.TrimPrefix(r.URL.Path, "/")
	signed, size, err := h.Src.Checkpoint(ctx)
	if err != nil {
		h.fail(w, err)
		return
	}
	switch {
	case p == "checkpoint":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(signed)
	case p == "proof/inclusion" || p == "proof/consistency":
		h.proof(w, r, p == "proof/inclusion", size)
	case strings.HasPrefix(p, "tile/"):
		id, entries, err := ParsePath(p)
		if err != nil {
			h.fail(w, iotpay.Wrap(iotpay.ENOTFOUND, "no such tile", err))
			return
		}
		// Tiles exist up to the latest checkpoint's size.
		level := id.Level
		if entries {
			level = 0
		}
		if TileWidthAt(size, level, id.Index) < id.Width {
			h.fail(w, iotpay.Errorf(iotpay.ENOTFOUND, "tlog: %s is beyond the latest checkpoint", p))
			return
		}
		var body []byte
		if entries {
			es, err := h.Src.ReadEntries(ctx, id.Index*TileWidth, id.Width)
			if err == nil && len(es) != id.Width {
				err = iotpay.Errorf(iotpay.EINTERNAL, "tlog: %d entries read, want %d", len(es), id.Width)
			}
			for _, e := range es {
				if err == nil {
					body, err = AppendBundleEntry(body, e)
				}
			}
			if err != nil {
				h.fail(w, err)
				return
			}
		} else if body, err = h.Src.ReadTile(ctx, id.Level, id.Index, id.Width); err != nil {
			h.fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if id.Width == TileWidth {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=1")
		}
		_, _ = w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

// proof serves an inclusion proof (index, size) or a consistency proof
// (old, size), for a size no larger than the latest checkpoint's.
func (h *Handler) proof(w http.ResponseWriter, r *http.Request, inclusion bool, latest uint64) {
	first := "old"
	if inclusion {
		first = "index"
	}
	n, err1 := queryUint(r.URL.Query(), first)
	size, err2 := queryUint(r.URL.Query(), "size")
	if err := errors.Join(err1, err2); err != nil {
		h.fail(w, iotpay.Errorf(iotpay.EINVALID, "query parameters %s and size must be non-negative integers", first))
		return
	}
	if size > latest {
		h.fail(w, iotpay.Errorf(iotpay.ENOTFOUND, "tlog: no checkpoint of size %d yet (latest %d)", size, latest))
		return
	}
	var hs [][]byte
	out := Proof{Size: size}
	if inclusion {
		hs, err1 = InclusionProof(r.Context(), h.Src, n, size)
		out.Index = &n
	} else {
		hs, err1 = ConsistencyProof(r.Context(), h.Src, n, size)
		out.Old = &n
	}
	if err1 != nil {
		h.fail(w, err1)
		return
	}
	out.Hashes = encodeHashes(hs)
	writeJSON(w, out)
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	status := map[iotpay.Code]int{iotpay.EINVALID: http.StatusBadRequest, iotpay.ENOTFOUND: http.StatusNotFound}[iotpay.ErrorCode(err)]
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	http.Error(w, iotpay.ErrorMessage(err), status)
}

func queryUint(q url.Values, name string) (uint64, error) {
	s := q.Get(name)
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, iotpay.Errorf(iotpay.EINVALID, "query parameter %s must be a non-negative integer", name)
	}
	return n, nil
}

func encodeHashes(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h)
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_ = json.NewEncoder(w).Encode(v)
}

// Client reads a log served by a Handler, over HTTP. It is a TileReader.
type Client struct {
	URL  string // the log's prefix, e.g. http://host:8080/log/
	HTTP *http.Client
}

func (c *Client) get(ctx context.Context, p string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.URL, "/")+"/"+p, nil)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "log url", err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "log unreachable", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "reading "+p, err)
	}
	if int64(len(b)) > limit {
		return nil, iotpay.Errorf(iotpay.EINVALID, "%s: answer over %d bytes", p, limit)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "%s: not found: %s", p, strings.TrimSpace(string(b)))
	case resp.StatusCode != http.StatusOK:
		return nil, iotpay.Errorf(iotpay.EUNAVAILABLE, "%s: status %d: %s", p, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// Checkpoint fetches the latest signed checkpoint (not verified).
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "checkpoint", CheckpointBytesMax)
}

// ReadTile implements TileReader.
func (c *Client) ReadTile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error) {
	p := TileID{Level: level, Index: index, Width: width}.Path()
	b, err := c.get(ctx, p, TileWidth*HashSize)
	if err != nil {
		return nil, err
	}
	if len(b) != width*HashSize {
		return nil, iotpay.Errorf(iotpay.EINVALID, "%s: %d bytes, want %d", p, len(b), width*HashSize)
	}
	return b, nil
}

// ReadEntries reads one entry bundle.
func (c *Client) ReadEntries(ctx context.Context, index uint64, width int) ([][]byte, error) {
	p := EntriesPath(index, width)
	b, err := c.get(ctx, p, int64(width)*(2+EntryBytesMax))
	if err != nil {
		return nil, err
	}
	return ParseBundle(b, width)
}

// Leaf reads leaf index from its entry bundle in the tree of size leaves.
func (c *Client) Leaf(ctx context.Context, index, size uint64) ([]byte, error) {
	bundle := index / TileWidth
	w := TileWidthAt(size, 0, bundle)
	if index >= size || w == 0 {
		return nil, iotpay.Errorf(iotpay.ENOTFOUND, "leaf %d is not in a tree of %d leaves", index, size)
	}
	es, err := c.ReadEntries(ctx, bundle, w)
	if err != nil {
		return nil, err
	}
	return es[index%TileWidth], nil
}

// InclusionProof fetches the inclusion proof of leaf index at size.
func (c *Client) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	return c.proof(ctx, fmt.Sprintf("proof/inclusion?index=%d&size=%d", index, size))
}

// ConsistencyProof fetches the consistency proof from old to size.
func (c *Client) ConsistencyProof(ctx context.Context, old, size uint64) ([][]byte, error) {
	return c.proof(ctx, fmt.Sprintf("proof/consistency?old=%d&size=%d", old, size))
}

func (c *Client) proof(ctx context.Context, p string) ([][]byte, error) {
	b, err := c.get(ctx, p, 16<<10)
	if err != nil {
		return nil, err
	}
	hs, err := ParseProof(b)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, p, err)
	}
	return hs, nil
}

// ParseProof decodes a proof endpoint's JSON body (from a log that may
// lie) into its hashes, each 32 bytes.
func ParseProof(b []byte) ([][]byte, error) {
	var pr Proof
	if err := json.Unmarshal(b, &pr); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "malformed proof", err)
	}
	return pr.DecodeHashes()
}
