// Package risk is the risk control run before every device payment: it
// scores a proposed payment against the product's risk Policy and the
// device's state and history, and decides to approve, decline or hold it
// for review, with a score (0-100) and the reasons.
//
// It is pure: no I/O, no clock, no goroutines. The caller (the payment
// processor, in its writer's transaction) loads the Input — the velocity
// counts of the policy's Windows, the device's state, its history Stats —
// calls Decide, records the Decision in the audit log and, once a payment
// is approved, adds its amount to the device's Stats. A Decision is the
// same for the same policy and input and encodes to the same JSON.
//
// # Checks and scoring
//
// Hard findings decline with score 100, all of them kept as reasons:
//
//   - velocity_count, velocity_amount: a velocity rule (action decline)
//     breached; the count and amount include this payment, so a count at
//     max_count is allowed and one above breaches
//   - geofence: the device is farther than radius_m from the centre
//   - firmware_not_attested: require_attested_firmware and the firmware's
//     measurement is not on the product's allowed list
//   - tamper: decline_tamper and the device's tamper flag is set
//   - anomaly: the amount's z (Stats.Z) is at or above decline_z
//
// Soft findings add points (the Points constants); the sum, capped at 100,
// reviews at or above review_score (default 50) and declines at or above
// decline_score (default 80). So with the defaults each finding reviews on
// its own but offline and clock skew, weak signals that an honest device
// back on the network often shows together, which review together or with
// another finding; a strong finding with any other declines:
//
//   - velocity_count, velocity_amount: a rule with action review, 50
//   - location_unknown: a geofence and no location, 50
//   - outside_hours: outside the allowed hours in their zone, 50
//   - offline_too_long: offline longer than offline_max, 30
//   - clock_skew: |device time - platform time| above clock_skew_max, 30
//   - cool_off: within cool_off.period of enrollment (or enrollment
//     unknown), an amount above cool_off.amount_max, 50
//   - anomaly: z at or above review_z, 50 rising linearly to 70 at decline_z
//   - velocity_unknown: the caller passed no count for a rule, 50
//
// Decide fails closed: a policy that does not validate declines
// (policy_invalid), as does a nil input (input_missing).
//
// # History
//
// The anomaly check compares log(amount) with the device's history, kept
// by the caller as Stats (Welford's online mean and variance), in standard
// deviations (Stats.Z). The deviation is taken at least MinLogStdDev, so a
// device that always charges the same is not alarmed by a small change:
// ten times its usual amount is z = 8, the default decline_z.
//
// # Policies
//
// ParsePolicy decodes a policy strictly and validates it; Validate checks a
// policy built otherwise. Both resolve the hours' time zone once into the
// policy, so Decide loads no zone (see Policy). Zones come from the
// system's tz database, or from time/tzdata if the program's main package
// embeds it.
package risk
