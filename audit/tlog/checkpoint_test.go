package tlog_test

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
)

const origin = "iotpay.example/log"

func logKeys(t *testing.T) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := tlog.GenerateLogKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tlog.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestCheckpointSignOpen(t *testing.T) {
	signer, verifier := logKeys(t)
	sk, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	co, err := tlog.NewSM2Signer(origin+"/sm2", sk)
	if err != nil {
		t.Fatal(err)
	}
	coV, err := tlog.NewVerifier(co.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	cp := tlog.Checkpoint{Origin: origin, Size: 12345, Hash: bytes.Repeat([]byte{7}, 32)}
	signed, err := tlog.SignCheckpoint(cp, signer, co)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(signed), origin+"\n12345\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n— "+origin+" ") {
		t.Fatalf("not a C2SP checkpoint note:\n%s", signed)
	}
	got, n, err := tlog.OpenCheckpoint(signed, verifier, coV)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != cp.Size || !bytes.Equal(got.Hash, cp.Hash) || len(n.Sigs) != 2 {
		t.Fatalf("opened %+v with %d signatures", got, len(n.Sigs))
	}
	// The SM2 co-signature is checked only when its key is known.
	if _, n, err := tlog.OpenCheckpoint(signed, verifier); err != nil || len(n.Sigs) != 1 {
		t.Fatalf("without the SM2 key: %v, %d signatures", err, len(n.Sigs))
	}

	// Tampering and wrong keys.
	_, otherV := logKeys(t)
	otherSigner, _ := logKeys(t)
	onlyOther, _ := tlog.SignCheckpoint(cp, otherSigner)
	for name, tc := range map[string]struct {
		b    []byte
		v    note.Verifier
		code iotpay.Code
	}{
		"size changed":        {bytes.Replace(signed, []byte("12345"), []byte("12346"), 1), verifier, iotpay.EUNAUTHORIZED},
		"another log key":     {signed, otherV, iotpay.EUNAUTHORIZED},
		"signed by another":   {onlyOther, verifier, iotpay.EUNAUTHORIZED},
		"no signature":        {cp.Marshal(), verifier, iotpay.EINVALID},
		"garbage":             {[]byte("\x00\xff"), verifier, iotpay.EINVALID},
		"co-signature forged": {forgeLastSig(signed), verifier, iotpay.EUNAUTHORIZED},
	} {
		vs := []note.Verifier{}
		if name == "co-signature forged" {
			vs = append(vs, coV)
		}
		if _, _, err := tlog.OpenCheckpoint(tc.b, tc.v, vs...); iotpay.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	// A checkpoint whose origin is not the key's name.
	s2, vk2, _ := note.GenerateKey(rand.Reader, "other.example/log")
	ns, _ := note.NewSigner(s2)
	wrongOrigin, _ := tlog.SignCheckpoint(tlog.Checkpoint{Origin: origin, Size: 1, Hash: make([]byte, 32)}, ns)
	v2, _ := tlog.NewVerifier(vk2)
	if _, _, err := tlog.OpenCheckpoint(wrongOrigin, v2); iotpay.ErrorCode(err) != iotpay.EUNAUTHORIZED {
		t.Errorf("origin mismatch: %v", err)
	}
}

// forgeLastSig flips a bit in the last signature line's signature.
func forgeLastSig(signed []byte) []byte {
	b := bytes.Clone(signed)
	i := len(b) - 10
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return b
}

func TestParseCheckpointStrict(t *testing.T) {
	good := "o\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
	if _, err := tlog.ParseCheckpoint(good); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"leading zero":   "o\n05\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
		"plus sign":      "o\n+5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
		"short hash":     "o\n5\nBwcH\n",
		"extension line": good + "ext\n",
		"no final line":  "o\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
		"empty origin":   "\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
		"url base64":     "o\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc_\n",
	} {
		if _, err := tlog.ParseCheckpoint(text); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}

func TestBundle(t *testing.T) {
	var b []byte
	entries := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{1}, 300)}
	for _, e := range entries {
		var err error
		if b, err = tlog.AppendBundleEntry(b, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tlog.ParseBundle(b, 3)
	if err != nil || len(got) != 3 || !bytes.Equal(got[2], entries[2]) || len(got[1]) != 0 {
		t.Fatalf("ParseBundle: %q, %v", got, err)
	}
	for name, tc := range map[string]struct {
		b []byte
		w int
	}{
		"fewer": {b, 4}, "more": {b, 2}, "truncated": {b[:len(b)-1], 3}, "odd byte": {append(bytes.Clone(b), 0), 3}, "width 0": {nil, 0},
	} {
		if _, err := tlog.ParseBundle(tc.b, tc.w); iotpay.ErrorCode(err) != iotpay.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if _, err := tlog.AppendBundleEntry(nil, make([]byte, 1<<16)); iotpay.ErrorCode(err) != iotpay.EINVALID {
		t.Errorf("oversized entry: %v", err)
	}
}

func FuzzParseBundle(f *testing.F) {
	b, _ := tlog.AppendBundleEntry(nil, []byte("entry"))
	b, _ = tlog.AppendBundleEntry(b, nil)
	f.Add(b, 2)
	f.Add([]byte{0, 5, 1}, 1)
	f.Fuzz(func(t *testing.T, b []byte, w int) {
		es, err := tlog.ParseBundle(b, w)
		if err != nil {
			return
		}
		var again []byte
		for _, e := range es {
			again, _ = tlog.AppendBundleEntry(again, e)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("bundle does not re-encode to itself")
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	skey, vkey, _ := tlog.GenerateLogKey(origin)
	s, _ := note.NewSigner(skey)
	v, _ := tlog.NewVerifier(vkey)
	signed, _ := tlog.SignCheckpoint(tlog.Checkpoint{Origin: origin, Size: 3, Hash: make([]byte, 32)}, s)
	f.Add(signed)
	f.Add([]byte(origin + "\n3\n\n\n— x AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, _, err := tlog.OpenCheckpoint(b, v)
		if err == nil && cp.Origin != origin {
			t.Fatalf("opened a checkpoint of origin %q", cp.Origin)
		}
	})
}
