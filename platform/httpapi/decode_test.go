package httpapi

import (
	"encoding/json"
	"testing"
)

func TestDecodeBytes(t *testing.T) {
	type in struct {
		Amount int64          `json:"amount"`
		Nested map[string]any `json:"nested"`
		List   []any          `json:"list"`
	}
	for _, c := range []struct {
		body string
		ok   bool
	}{
		{`{"amount":1}`, true},
		{` {"amount":1,"nested":{"a":1,"b":[{"a":1},{"a":2}]},"list":[{"x":1},{"x":1}]} `, true},
		{`{"nested":{"a":{},"b":{}}}`, true},
		{`{"amount":1,"amount":1}`, false},
		{`{"amount":1,"Amount":1}`, false},
		{`{"nested":{"a":1,"a":2}}`, false},
		{`{"list":[{"x":1,"x":2}]}`, false},
		{`{"amount":1}{}`, false},
		{`{"amount":1}]`, false},
		{`{"amount":1} x`, false},
		{`{"amount":"1"}`, false},
		{`{"other":1}`, false},
		{`[]`, false},
		{`null`, false},
		{`"x"`, false},
		{``, false},
		{`{"amount":`, false},
	} {
		var v in
		if err := decodeBytes([]byte(c.body), &v); (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok %v", c.body, err, c.ok)
		}
	}
}

// FuzzDecodeBytes: the strict decoder never panics, takes only valid
// JSON objects, and takes every object encoding/json writes.
func FuzzDecodeBytes(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":[1,{"c":2}]}}`, `{"a":1,"A":2}`, `{}{}`, `[{"a":1}]`, `{"a":"\u0041"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var v map[string]any
		if decodeBytes(raw, &v) != nil {
			return
		}
		if !json.Valid(raw) || v == nil {
			t.Fatalf("took %q", raw)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var w map[string]any
		if err := decodeBytes(again, &w); err != nil {
			t.Fatalf("refused %s, written by encoding/json: %v", again, err)
		}
	})
}
