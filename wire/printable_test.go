package wire

import "testing"

func TestPrintableRefusesFormatCharacters(t *testing.T) {
	for _, s := range []string{"rq\u0085x", "rq\u202ex", "rq\u200bx", "rq\x00"} {
		if printable(s) {
			t.Errorf("printable(%q) = true", s)
		}
	}
	if !printable("rq_1_é") {
		t.Error("plain text refused")
	}
}
