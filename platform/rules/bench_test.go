package rules

import (
	"testing"
	"time"
)

// BenchmarkEval evaluates each reference product's typical event; the
// target is at most 20 µs an event on a 2-core machine.
func BenchmarkEval(b *testing.B) {
	now := time.Date(2025, 3, 1, 18, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		rs   Ruleset
		in   Input
	}{
		{"ev/session_update", EVChargerRules(), Input{
			Event:   Event{Type: "session_update", Num: map[string]int64{"wh": 30_000}, Str: map[string]string{"session": "s-1"}},
			Session: Session{Open: true, Held: 1000}, Now: now}},
		{"ev/session_end", EVChargerRules(), Input{
			Event:   Event{Type: "session_end", Num: map[string]int64{"wh": 30_000}, Str: map[string]string{"session": "s-1"}},
			Session: Session{Open: true, Held: 3000}, Now: now}},
		{"vending/dispense", VendingRules("https://supplier.example/orders"), Input{
			Event: Event{Type: "dispense", Str: map[string]string{"sku": "A2"}}, Now: now}},
		{"meter/period_end", SmartMeterRules(), Input{
			Event:       Event{Type: "reading", Num: map[string]int64{"kwh_total": 1_250_000}, Str: map[string]string{"period_end": "true"}},
			LastReading: 1_000_000, Now: now}},
		{"parking/exit", ParkingRules(), Input{Event: Event{Type: "exit", Num: map[string]int64{"minutes": 135}}, Now: now}},
	} {
		p, err := Compile(c.rs, ReferenceTariffs(), "EUR")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a, err := p.Eval(&c.in)
				if err != nil || a.Kind == None {
					b.Fatal(a, err)
				}
			}
		})
	}
}

// BenchmarkCompile compiles the EV charger's rules, as a product's
// profile change does.
func BenchmarkCompile(b *testing.B) {
	rs, tariffs := EVChargerRules(), ReferenceTariffs()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(rs, tariffs, "EUR"); err != nil {
			b.Fatal(err)
		}
	}
}
