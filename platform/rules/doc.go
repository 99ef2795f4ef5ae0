// Package rules turns a device event into one action by a product's
// business rules, written in CEL (https://cel.dev).
//
// A ruleset is an ordered list of rules; the first rule whose `when` holds
// decides, and when none holds the action is none. Compile checks a
// ruleset against the tenant's tariffs once; the Program it returns
// evaluates events concurrently.
//
// # CEL surface
//
// Variables, in every expression:
//
//	event.type       string
//	event.num        map(string, int)     e.g. event.num.wh, has(event.num.wh), "wh" in event.num
//	event.str        map(string, string)  e.g. event.str.session
//	device.id, device.firmware                        string
//	device.attested, device.tamper                    bool
//	device.battery                                    int (percent, -1 unknown)
//	device.reported                                   map(string, dyn): the reported shadow
//	session.open     bool  (false, and zeros, when no session is open)
//	session.held, session.captured                    int (minor units)
//	last_reading     int   the last billed meter reading (0 if none)
//	delta            int   reading - last_reading: in a bill rule's amount only
//	now              timestamp: the event's time on the platform
//	hour             int   now's hour, 0-23, in UTC
//
// Functions, besides CEL's standard ones:
//
//	price(tariff string, quantity int) int
//	    the tenant's tariff at now's time of day in the tariff's zone:
//	    ceil(quantity × price_minor / per_units) minor units
//	ceil_div(a int, b int) int    ceil(a / b), b > 0
//
// Reading a missing map key is an evaluation error, as is overflow. An
// expression that loops (all, exists, map, filter) is stopped past CostMax;
// one that does not evaluates each of its nodes once at most.
//
// A capture rule without an amount captures session.held, what the input
// says is held. Program.Needs tells which inputs (the session, the last
// reading, the reported shadow) the rules read at all.
//
// # How price gets the time
//
// A Program is shared by concurrent evaluations, so price cannot read a
// clock or a field of the program. A macro rewrites each price(t, q) while
// parsing into the internal call @price(@ctx, t, q); @ctx is a variable
// the evaluation's activation binds to the evaluation itself, carrying
// Input.Now and the program's tariffs. Names starting with @ cannot be
// written in an expression, so a rule can neither call @price nor shadow
// @ctx. A literal tariff name is checked when compiling.
//
// # Types
//
// Amounts, quantities and readings are int (int64 minor units or units):
// their expressions must have type int (or dyn, checked when evaluated)
// and may not compute with doubles at all; `when` must be bool, session
// keys and items string. Every failure, at compile or evaluation time, is
// an *iotpay.Error with code EINVALID naming the rule and the field; a
// failed evaluation never yields an action.
package rules
