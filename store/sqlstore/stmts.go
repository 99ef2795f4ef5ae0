package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// stmtsMax bounds the statements a pool keeps prepared: statement texts
// are a fixed set (bulk statements come in a few sizes), so this is room,
// not a working limit.
const stmtsMax = 1024

// stmtCache is a pool's prepared statements, by query text (with ?
// placeholders). A transaction that runs a statement not prepared yet
// runs it unprepared and notes it; it is prepared once the transaction
// has ended and its connection is free (with one connection, as the
// writer has, preparing while a transaction holds it would wait for
// ever). So each statement is parsed by the database once, not once per
// run: for SQLite that is most of a short statement's cost.
type stmtCache struct {
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool
}

func newStmtCache() *stmtCache {
	return &stmtCache{stmts: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// get returns query's prepared statement, or nil after noting it to be
// prepared.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stmts[query]
	if s == nil && len(c.stmts)+len(c.pending) < stmtsMax {
		c.pending[query] = true
	}
	return s
}

// prepare prepares the statements noted since the last call on pool.
// A statement that fails to prepare stays unprepared (it fails when run,
// with its error where it is run).
func (c *stmtCache) prepare(ctx context.Context, pool *sql.DB, bind func(string) string) {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return
	}
	qs := make([]string, 0, len(c.pending))
	for q := range c.pending {
		qs = append(qs, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range qs {
		s, err := pool.PrepareContext(context.WithoutCancel(ctx), bind(q))
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.stmts[q] == nil {
			c.stmts[q], s = s, nil
		}
		c.mu.Unlock()
		if s != nil {
			s.Close()
		}
	}
}

// close closes every prepared statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.stmts {
		s.Close()
	}
	clear(c.stmts)
}
