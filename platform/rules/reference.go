package rules

// The rules of four reference products, for the demo, the scenario tests
// and as examples for operators. Their prices are in EUR cents.

// ReferenceTariffs are the tariffs the reference products price by: "ev"
// for charging (cheaper at night) and "grid" for a metered supply (peak
// 07:00-22:00), both per kWh (1000 Wh) in Berlin time.
func ReferenceTariffs() []Tariff {
	return []Tariff{
		{Name: "ev", Currency: "EUR", PerUnits: 1000, Zone: "Europe/Berlin", Bands: []Band{
			{From: "00:00", To: "07:00", PriceMinor: 20},
			{From: "07:00", To: "24:00", PriceMinor: 35},
		}},
		{Name: "grid", Currency: "EUR", PerUnits: 1000, Zone: "Europe/Berlin", Bands: []Band{
			{From: "00:00", To: "07:00", PriceMinor: 15},
			{From: "07:00", To: "22:00", PriceMinor: 30},
			{From: "22:00", To: "24:00", PriceMinor: 15},
		}},
	}
}

// EVChargerRules are an EV charger's: a session starts with a hold (of the
// driver's announced maximum, or 30.00), grows it when the energy
// delivered (event.num.wh) is worth more than is held, and captures what
// was delivered when it ends.
func EVChargerRules() Ruleset {
	return Ruleset{Rules: []Rule{
		{Name: "ev-start", When: `event.type == "session_start"`, Action: Hold,
			Amount: `has(event.num.wh_max) ? price("ev", event.num.wh_max) : 3000`},
		{Name: "ev-top-up", When: `event.type == "session_update" && session.open && price("ev", event.num.wh) > session.held`,
			Action: Increment, Amount: `price("ev", event.num.wh) - session.held + 1000`},
		{Name: "ev-end", When: `event.type == "session_end"`, Action: Capture, Amount: `price("ev", event.num.wh)`},
	}}
}

// VendingRules are a vending machine's: a dispensed item is charged by
// its slot (event.str.sku), 2.00 for a slot not listed; a slot running low
// (fewer than 3 left) is refilled to 10 from supplier, an http(s) URL.
func VendingRules(supplier string) Ruleset {
	const prices = `{"A1": 150, "A2": 250, "B1": 300}`
	return Ruleset{Rules: []Rule{
		{Name: "dispense", When: `event.type == "dispense"`, Action: Charge,
			Amount: `event.str.sku in ` + prices + ` ? ` + prices + `[event.str.sku] : 200`},
		{Name: "restock", When: `event.type == "stock" && event.num.left < 3`, Action: Refill,
			Quantity: `10 - event.num.left`, Item: `event.str.sku`, Supplier: supplier},
	}}
}

// SmartMeterRules are a smart meter's: at the end of a billing period
// (event.str.period_end is "true") the energy used since the last bill is
// billed from the cumulative reading event.num.kwh_total (in Wh); other
// readings, and a period with nothing used, are none.
func SmartMeterRules() Ruleset {
	return Ruleset{Rules: []Rule{
		{Name: "period-end",
			When:   `event.type == "reading" && "period_end" in event.str && event.str.period_end == "true" && event.num.kwh_total != last_reading`,
			Action: Bill, Reading: `event.num.kwh_total`, Amount: `price("grid", delta)`},
	}}
}

// ParkingRules are a parking barrier's: entering is free, and so is
// leaving within 15 minutes; after that every started hour costs 2.00,
// at most 20.00 a started day.
func ParkingRules() Ruleset {
	const hours, days = `ceil_div(event.num.minutes - 15, 60) * 200`, `ceil_div(event.num.minutes, 1440) * 2000`
	return Ruleset{Rules: []Rule{
		{Name: "entry", When: `event.type == "entry"`, Action: None},
		{Name: "grace", When: `event.type == "exit" && event.num.minutes <= 15`, Action: None},
		{Name: "exit", When: `event.type == "exit"`, Action: Charge,
			Amount: hours + ` < ` + days + ` ? ` + hours + ` : ` + days},
	}}
}
