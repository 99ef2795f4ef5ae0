//go:build race

package reconcile

// raceEnabled says the race detector is on: the tests that read hundreds
// of megabytes are skipped, being ten times slower.
const raceEnabled = true
