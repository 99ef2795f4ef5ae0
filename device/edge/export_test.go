package edge

// Counters returns the rounds of a request that got no answer and the
// late answers to earlier blocks taken for stale.
func Counters(t *Transport) (lostRounds, staleAnswers uint64) {
	return t.lostRounds.Load(), t.staleAnswers.Load()
}
