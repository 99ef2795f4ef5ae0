package acquirersim

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
)

// Bounds of the rules.
const (
	// RulesMax bounds the rules of one simulator.
	RulesMax = 1000
	// RulesFileBytesMax bounds a rules file, in bytes.
	RulesFileBytesMax = 1 << 20
	// DelayMax bounds a delay action.
	DelayMax = 10 * time.Minute
)

// Action is what a rule does with a request it matches.
type Action string

// Actions.
const (
	// Approve processes the request normally: an authorization is
	// approved, a completion or reversal applied.
	Approve Action = "approve"
	// Decline answers Rule.Code (05 by default) and changes nothing.
	Decline Action = "decline"
	// Timeout processes the request as Approve does (or declines it
	// with Rule.Code, when set) but never answers: the worst case for
	// a client, which must reverse.
	Timeout Action = "timeout"
	// Drop processes the request as Timeout does, then closes the
	// connection instead of answering.
	Drop Action = "drop"
	// Delay processes the request as Timeout does and answers after
	// Rule.Delay.
	Delay Action = "delay"
)

// Match says which requests a rule is about. Every condition set must
// hold.
type Match struct {
	// PANPrefix matches field 2's first digits.
	PANPrefix string
	// AmountMin and AmountMax bound field 4, in minor units; AmountMax
	// 0 is no upper bound. A request without field 4 does not match a
	// rule with bounds.
	AmountMin, AmountMax int64
	// MTI lists the message types matched. Empty matches 0100 and 0200
	// (authorizations, sales, refunds): rules are about card requests,
	// so that a card that "times out" still has its reversal answered.
	// Name 0220, 0400, 0401 or 0800 to act on those.
	MTI []string
}

// Rule is one line of the simulator's behaviour. The first rule that
// matches a request decides; a request no rule matches is approved.
type Rule struct {
	Match  Match
	Action Action
	// Code is the response code of Decline (05 when empty) or, with
	// Timeout, Drop or Delay, the decline the request is processed as.
	Code string
	// Delay is how long Delay waits before answering.
	Delay time.Duration
	// Times, when positive, limits the rule to the first Times requests
	// it matches; later ones fall through to the next rules.
	Times int
}

func (r *Rule) check() error {
	bad := func(format string, args ...any) error {
		return iotpay.Errorf(iotpay.EINVALID, "acquirersim: rule: "+format, args...)
	}
	switch r.Action {
	case Approve, Decline, Timeout, Drop, Delay:
	default:
		return bad("unknown action %q (approve, decline, timeout, drop, delay)", r.Action)
	}
	switch {
	case r.Code != "" && (len(r.Code) != 2 || !alnum(r.Code)):
		return bad("code %q is not 2 letters or digits", r.Code)
	case r.Action == Approve && r.Code != "" && r.Code != iso8583.CodeApproved:
		return bad("approve with code %s", r.Code)
	case r.Action == Delay && (r.Delay <= 0 || r.Delay > DelayMax):
		return bad("delay %v out of (0, %v]", r.Delay, DelayMax)
	case r.Action != Delay && r.Delay != 0:
		return bad("a delay for action %s", r.Action)
	case r.Match.AmountMin < 0 || r.Match.AmountMax < 0 || (r.Match.AmountMax != 0 && r.Match.AmountMax < r.Match.AmountMin):
		return bad("amount range %d..%d", r.Match.AmountMin, r.Match.AmountMax)
	case r.Times < 0:
		return bad("negative times")
	case !digits(r.Match.PANPrefix):
		return bad("PAN prefix %q is not digits", r.Match.PANPrefix)
	}
	for _, m := range r.Match.MTI {
		if len(m) != 4 || !digits(m) {
			return bad("MTI %q is not 4 digits", m)
		}
	}
	return nil
}

// matches reports whether the rule's conditions hold for m.
func (r *Rule) matches(m *iso8583.Message) bool {
	mtis := r.Match.MTI
	if len(mtis) == 0 {
		mtis = []string{"0100", "0200"}
	}
	if !slices.Contains(mtis, m.MTI) {
		return false
	}
	if r.Match.PANPrefix != "" && !strings.HasPrefix(m.Get(iso8583.FieldPAN), r.Match.PANPrefix) {
		return false
	}
	if r.Match.AmountMin != 0 || r.Match.AmountMax != 0 {
		a, err := m.Int(iso8583.FieldAmount)
		if err != nil || a < r.Match.AmountMin || (r.Match.AmountMax != 0 && a > r.Match.AmountMax) {
			return false
		}
	}
	return true
}

// jsonRule is a rule in a rules file: flat, with the delay as a Go
// duration ("250ms").
type jsonRule struct {
	PANPrefix string   `json:"pan_prefix"`
	AmountMin int64    `json:"amount_min"`
	AmountMax int64    `json:"amount_max"`
	MTI       []string `json:"mti"`
	Action    Action   `json:"action"`
	Code      string   `json:"code"`
	Delay     string   `json:"delay"`
	Times     int      `json:"times"`
}

// LoadRules reads a rules file: a JSON array of objects with the fields
// pan_prefix, amount_min, amount_max, mti (a list), action, code, delay
// (a duration such as "2s") and times, all but action optional. Unknown
// fields are refused.
//
//	[{"pan_prefix": "4000000000000051", "action": "decline", "code": "51"},
//	 {"amount_min": 100000, "action": "timeout"}]
func LoadRules(r io.Reader) ([]Rule, error) {
	b, err := io.ReadAll(io.LimitReader(r, RulesFileBytesMax+1))
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "acquirersim: reading rules", err)
	}
	if len(b) > RulesFileBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "acquirersim: rules file larger than %d bytes", RulesFileBytesMax)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var js []jsonRule
	if err := dec.Decode(&js); err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "acquirersim: rules are not a JSON array of rules", err)
	}
	if dec.More() {
		return nil, iotpay.Errorf(iotpay.EINVALID, "acquirersim: data after the rules array")
	}
	if len(js) > RulesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "acquirersim: more than %d rules", RulesMax)
	}
	rules := make([]Rule, 0, len(js))
	for i, j := range js {
		r := Rule{
			Match:  Match{PANPrefix: j.PANPrefix, AmountMin: j.AmountMin, AmountMax: j.AmountMax, MTI: j.MTI},
			Action: j.Action, Code: j.Code, Times: j.Times,
		}
		if j.Delay != "" {
			if r.Delay, err = time.ParseDuration(j.Delay); err != nil {
				return nil, iotpay.Errorf(iotpay.EINVALID, "acquirersim: rule %d: delay %q is not a duration", i+1, j.Delay)
			}
		}
		if err := r.check(); err != nil {
			return nil, iotpay.Errorf(iotpay.EINVALID, "rule %d: %s", i+1, iotpay.ErrorMessage(err))
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		x := s[i]
		if !(x >= '0' && x <= '9' || x >= 'A' && x <= 'Z' || x >= 'a' && x <= 'z') {
			return false
		}
	}
	return true
}
