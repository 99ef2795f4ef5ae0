package rules

import (
	"testing"
)

func TestValidateTariff(t *testing.T) {
	for _, tr := range ReferenceTariffs() {
		if err := ValidateTariff(tr); err != nil {
			t.Errorf("reference tariff %s: %v", tr.Name, err)
		}
	}
	day := func(bands ...Band) Tariff {
		return Tariff{Name: "t", Currency: "EUR", PerUnits: 1000, Zone: "Europe/Paris", Bands: bands}
	}
	b := func(from, to string) Band { return Band{From: from, To: to, PriceMinor: 10} }
	for _, c := range []struct {
		name string
		t    Tariff
		want string // "" for valid
	}{
		{"one band", day(b("00:00", "24:00")), ""},
		{"bands in any order", day(b("12:00", "24:00"), b("00:00", "12:00")), ""},
		{"UTC by default", Tariff{Name: "t", Currency: "JPY", PerUnits: 1, Bands: []Band{b("00:00", "24:00")}}, ""},
		{"free band", day(Band{From: "00:00", To: "24:00"}), ""},
		{"48 half hours", halfHours(48), ""},
		{"gap", day(b("00:00", "07:00"), b("07:30", "24:00")), `tariff "t": bands leave a gap at 07:00-07:30`},
		{"gap at the start", day(b("01:00", "24:00")), `tariff "t": bands leave a gap at 00:00-01:00`},
		{"gap at the end", day(b("00:00", "23:59")), `tariff "t": bands leave a gap at 23:59-24:00`},
		{"overlap", day(b("00:00", "08:00"), b("07:00", "24:00")), `tariff "t": bands overlap at 07:00-08:00`},
		{"same band twice", day(b("00:00", "24:00"), b("00:00", "24:00")), `tariff "t": bands overlap at 00:00-24:00`},
		{"over midnight", day(b("22:00", "06:00")), `tariff "t": band 1: 22:00-06:00 ends before it starts (split a band over midnight in two)`},
		{"empty band", day(b("07:00", "07:00")), `tariff "t": band 1: 07:00-07:00 ends before it starts`},
		{"bad hour", day(b("00:00", "25:00")), `tariff "t": band 1: to "25:00" is not a time HH:MM (00:01-24:00)`},
		{"bad minute", day(b("00:60", "24:00")), `tariff "t": band 1: from "00:60" is not a time HH:MM (00:00-23:59)`},
		{"one digit", day(b("0:00", "24:00")), `tariff "t": band 1: from "0:00" is not a time`},
		{"24:00 as a start", day(b("00:00", "24:00"), b("24:00", "24:00")), `tariff "t": band 2: from "24:00" is not a time`},
		{"24:30", day(b("00:00", "24:30")), `tariff "t": band 1: to "24:30" is not a time`},
		{"00:00 as an end", day(b("00:00", "00:00")), `tariff "t": band 1: to "00:00" is not a time`},
		{"not digits", day(b("0a:00", "24:00")), `tariff "t": band 1: from "0a:00" is not a time`},
		{"negative price", day(Band{From: "00:00", To: "24:00", PriceMinor: -1}), `tariff "t": band 1: price_minor must be in 0..1000000000`},
		{"no bands", day(), `tariff "t": bands: want 1..48, have 0`},
		{"too many bands", halfHours(49), `tariff "t": bands: want 1..48, have 49`},
		{"bad zone", Tariff{Name: "t", Currency: "EUR", PerUnits: 1, Zone: "Mars/Olympus", Bands: []Band{b("00:00", "24:00")}},
			`tariff "t": unknown zone "Mars/Olympus"`},
		{"server's zone", Tariff{Name: "t", Currency: "EUR", PerUnits: 1, Zone: "Local", Bands: []Band{b("00:00", "24:00")}},
			`tariff "t": unknown zone "Local"`},
		{"bad name", Tariff{Name: "Grid", Currency: "EUR", PerUnits: 1, Bands: []Band{b("00:00", "24:00")}},
			`tariff "Grid": name must match ^[a-z][a-z0-9_]{0,31}$`},
		{"long name", Tariff{Name: "a234567890123456789012345678901234", Currency: "EUR", PerUnits: 1, Bands: []Band{b("00:00", "24:00")}},
			`name must match`},
		{"bad currency", Tariff{Name: "t", Currency: "eur", PerUnits: 1, Bands: []Band{b("00:00", "24:00")}}, `tariff "t": unknown currency "eur"`},
		{"per_units 0", Tariff{Name: "t", Currency: "EUR", Bands: []Band{b("00:00", "24:00")}}, `tariff "t": per_units must be in 1..1000000000`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateTariff(c.t)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantInvalid(t, err, c.want)
		})
	}
}

// halfHours returns a tariff of n half-hour bands (the last one stretched
// or cut to end the day when n is not 48).
func halfHours(n int) Tariff {
	t := Tariff{Name: "t", Currency: "EUR", PerUnits: 1000}
	for i := range n {
		from, to := min(i*30, dayMinutes-1), min((i+1)*30, dayMinutes)
		if i == n-1 {
			to = dayMinutes
		}
		t.Bands = append(t.Bands, Band{From: hhmm(from), To: hhmm(to), PriceMinor: int64(i)})
	}
	return t
}
