package iotpay

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixedReader returns an endless stream of b.
type fixedReader byte

func (r fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestNewIDFormat(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
		now    time.Time
		r      fixedReader
		want   string
	}{
		{"epoch, zero entropy", PrefixDevice, time.UnixMilli(0), 0, "dev_00000000000000000000000000"},
		{"epoch, full entropy", PrefixPayment, time.UnixMilli(0), 0xff, "pay_0000000000zzzzzzzzzzzzzzzz"},
		// The ULID specification's example time, 01ARYZ6S41.
		{"ULID spec time", PrefixAccount, time.UnixMilli(1469918176385), 0, "acc_01aryz6s410000000000000000"},
		{"max 48-bit time", PrefixTenant, time.UnixMilli(1<<48 - 1), 0, "ten_7zzzzzzzzz0000000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NewID(tc.prefix, tc.now, tc.r)
			if got != tc.want {
				t.Errorf("NewID = %q, want %q", got, tc.want)
			}
			if !ValidID(tc.prefix, got) {
				t.Errorf("ValidID(%q, %q) = false", tc.prefix, got)
			}
		})
	}
}

func TestNewIDEveryPrefix(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	prefixes := []string{PrefixTenant, PrefixDevice, PrefixProduct, PrefixAccount,
		PrefixPayment, PrefixTransfer, PrefixBinding, PrefixAPIKey}
	for _, p := range prefixes {
		t.Run(p, func(t *testing.T) {
			id := NewID(p, now, nil) // crypto/rand
			if !ValidID(p, id) {
				t.Fatalf("ValidID(%q, %q) = false", p, id)
			}
			if len(id) != len(p)+1+ulidLen {
				t.Errorf("id %q has length %d", id, len(id))
			}
			for _, other := range prefixes {
				if other != p && ValidID(other, id) {
					t.Errorf("%q is valid as a %q id", id, other)
				}
			}
			if id2 := NewID(p, now, nil); id2 == id {
				t.Errorf("two ids in one millisecond are equal: %q", id)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	good := NewID(PrefixDevice, time.UnixMilli(1_750_000_000_000), bytes.NewReader([]byte("0123456789")))
	ulid := good[len("dev_"):]
	for _, tc := range []struct {
		name, prefix, s string
		want            bool
	}{
		{"good", "dev", good, true},
		{"first digit 7", "dev", "dev_7" + ulid[1:], true},
		{"prefix mismatch", "acc", good, false},
		{"prefix case", "dev", "DEV_" + ulid, false},
		{"empty", "dev", "", false},
		{"prefix only", "dev", "dev_", false},
		{"no separator", "dev", "dev" + ulid, false},
		{"other separator", "dev", "dev-" + ulid, false},
		{"double separator", "dev", "dev__" + ulid[1:], false},
		{"short", "dev", good[:len(good)-1], false},
		{"long", "dev", good + "0", false},
		{"upper case", "dev", "dev_" + strings.ToUpper(ulid), false},
		{"letter i", "dev", good[:len(good)-1] + "i", false},
		{"letter l", "dev", good[:len(good)-1] + "l", false},
		{"letter o", "dev", good[:len(good)-1] + "o", false},
		{"letter u", "dev", good[:len(good)-1] + "u", false},
		{"punctuation", "dev", good[:len(good)-1] + "-", false},
		{"non-ASCII", "dev", good[:len(good)-2] + "é", false},
		{"NUL", "dev", good[:len(good)-1] + "\x00", false},
		{"first digit 8 overflows 128 bits", "dev", "dev_8" + ulid[1:], false},
		{"first digit z", "dev", "dev_z" + ulid[1:], false},
		{"prefix of 8", "abcdefgh", "abcdefgh_" + ulid, true},
		{"prefix of 9", "abcdefghi", "abcdefghi_" + ulid, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidID(tc.prefix, tc.s); got != tc.want {
				t.Errorf("ValidID(%q, %q) = %v, want %v", tc.prefix, tc.s, got, tc.want)
			}
		})
	}
}

func TestIDTime(t *testing.T) {
	for _, now := range []time.Time{
		time.UnixMilli(0),
		time.UnixMilli(1),
		time.Date(2026, 11, 25, 1, 43, 31, 123_456_789, time.UTC),
		time.Date(2038, 1, 19, 3, 14, 8, 999_999_999, time.UTC),
		time.UnixMilli(1<<48 - 1),
	} {
		t.Run(now.Format(time.RFC3339Nano), func(t *testing.T) {
			id := NewID(PrefixPayment, now, nil)
			got := IDTime(id)
			want := now.Truncate(time.Millisecond)
			if !got.Equal(want) {
				t.Errorf("IDTime(NewID(%v)) = %v, want %v", now, got, want)
			}
		})
	}
}

// TestIDOrder checks that ids sort by creation time: with a clock that
// only moves forward, lexical order is creation order whatever the
// randomness.
func TestIDOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	for range 2000 {
		// Steps from 1 ms to about a day, so every digit of the time part
		// carries at some point.
		now = now.Add(time.Duration(1+rng.Int64N(int64(24*time.Hour/time.Millisecond))>>rng.IntN(27)) * time.Millisecond)
		ids = append(ids, NewID(PrefixPayment, now, rngReader{rng}))
	}
	if !slices.IsSorted(ids) {
		for i := 1; i < len(ids); i++ {
			if ids[i-1] >= ids[i] {
				t.Fatalf("id %d %q sorts after id %d %q", i-1, ids[i-1], i, ids[i])
			}
		}
	}
	// Ids in one millisecond share the time part; only randomness orders
	// them.
	a, b := NewID(PrefixPayment, now, fixedReader(0xff)), NewID(PrefixPayment, now, fixedReader(0))
	if a[:len("pay_")+10] != b[:len("pay_")+10] {
		t.Errorf("ids of one millisecond differ in their time part: %q, %q", a, b)
	}
}

type rngReader struct{ r *rand.Rand }

func (r rngReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

func TestIDTimeGarbage(t *testing.T) {
	// Not valid ids: IDTime must not panic; what it returns is meaningless.
	for _, s := range []string{"", "_", "dev", "dev_", "dev_UUUUUUUUUU", "dev_\xff\xfe", strings.Repeat("z", 100)} {
		_ = IDTime(s)
	}
}

// FuzzValidID checks that ValidID never panics, that what it accepts has
// the id shape, and that the time part round-trips through IDTime.
func FuzzValidID(f *testing.F) {
	f.Add("dev", NewID(PrefixDevice, time.UnixMilli(1_750_000_000_000), fixedReader(7)))
	f.Add("pay", "pay_7zzzzzzzzzzzzzzzzzzzzzzzzz")
	f.Add("pay", "pay_8zzzzzzzzzzzzzzzzzzzzzzzzz")
	f.Add("dev", "acc_01aryz6s410000000000000000")
	f.Add("", "_01aryz6s410000000000000000")
	f.Add("dev", "dev_01ARYZ6S41TSV4RRFFQ69G5FAV")
	f.Add("dev", "")
	f.Fuzz(func(t *testing.T, prefix, s string) {
		_ = IDTime(s)
		if ValidID(prefix, s) {
			if !strings.HasPrefix(s, prefix+"_") || len(s) != len(prefix)+1+ulidLen {
				t.Fatalf("ValidID(%q, %q) accepted a malformed id", prefix, s)
			}
			// The first 10 digits are the time: an id made at IDTime(s)
			// starts the same.
			again := NewID(prefix, IDTime(s), fixedReader(0))
			if n := len(prefix) + 1 + 10; again[:n] != s[:n] {
				t.Fatalf("time part of %q does not round-trip: %q", s, again)
			}
		}
		if !strings.Contains(prefix, "_") && len(prefix) <= idPrefixMax {
			id := NewID(prefix, time.UnixMilli(int64(len(s))), fixedReader(len(s)))
			if !ValidID(prefix, id) {
				t.Fatalf("NewID(%q) = %q is not valid", prefix, id)
			}
		}
	})
}

func TestDeriveID(t *testing.T) {
	a := DeriveID(PrefixAccount, "ten_x", "clearing", "EUR")
	if !ValidID(PrefixAccount, a) || a != DeriveID(PrefixAccount, "ten_x", "clearing", "EUR") {
		t.Fatalf("derived %q not valid or not stable", a)
	}
	if a == DeriveID(PrefixAccount, "ten_x", "clearingE", "UR") || a == DeriveID(PrefixAccount, "ten_y", "clearing", "EUR") {
		t.Fatal("different parts gave the same id")
	}
}

func TestIDBytes(t *testing.T) {
	for range 100 {
		id := NewID(PrefixDevice, time.Now(), nil)
		b, err := IDBytes(PrefixDevice, id)
		if err != nil {
			t.Fatal(err)
		}
		if back := IDFromBytes(PrefixDevice, b); back != id {
			t.Fatalf("%s → %x → %s", id, b, back)
		}
	}
	for _, bad := range []string{"", "dev_", "pay_01m904zpdzp65mamax9dh6pned", "dev_81m904zpdzp65mamax9dh6pned", "dev_01m904zpdzp65mamax9dh6pneu"} {
		if _, err := IDBytes(PrefixDevice, bad); ErrorCode(err) != EINVALID {
			t.Errorf("IDBytes(%q) = %v, want EINVALID", bad, err)
		}
	}
}
