package exec

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Pool holds one connection per host for a run: the first use dials, later
// uses get the same connection, and a connection that died is dialled again.
// Hosts behind the same jump host share one connection to it.
type Pool struct {
	mu      sync.Mutex
	hosts   map[string]*poolEntry
	jumps   map[string]*poolEntry // by user@address:port
	closing bool
}

type poolEntry struct {
	mu   sync.Mutex // held while dialling, so concurrent users wait for one dial
	cfg  Config
	jump *Config
	conn *Conn
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{hosts: map[string]*poolEntry{}, jumps: map[string]*poolEntry{}}
}

// Add registers how to reach cfg.Host, through jump if it is not nil.
func (p *Pool) Add(cfg Config, jump *Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hosts[cfg.Host] = &poolEntry{cfg: cfg, jump: jump}
}

// Get returns the host's connection, dialling it if needed.
func (p *Pool) Get(ctx context.Context, host string) (*Conn, error) {
	p.mu.Lock()
	e, ok := p.hosts[host]
	closing := p.closing
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s: no such host in this run", host)
	}
	if closing {
		return nil, fmt.Errorf("%s: connection pool closed", host)
	}
	return e.connect(ctx, func(ctx context.Context) (*Conn, error) {
		cfg := e.cfg
		if e.jump != nil {
			via, err := p.jumpConn(ctx, *e.jump)
			if err != nil {
				return nil, fmt.Errorf("%s: jump host: %w", host, err)
			}
			cfg.Via = via
		}
		return Dial(ctx, cfg)
	})
}

func (p *Pool) jumpConn(ctx context.Context, cfg Config) (*Conn, error) {
	key := fmt.Sprintf("%s@%s", cfg.User, cfg.hostport())
	p.mu.Lock()
	e, ok := p.jumps[key]
	if !ok {
		e = &poolEntry{cfg: cfg}
		p.jumps[key] = e
	}
	p.mu.Unlock()
	return e.connect(ctx, func(ctx context.Context) (*Conn, error) { return Dial(ctx, cfg) })
}

// connect returns the entry's live connection or makes one with dial;
// concurrent callers wait for the one dial.
func (e *poolEntry) connect(ctx context.Context, dial func(context.Context) (*Conn, error)) (*Conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil && e.conn.Alive() {
		return e.conn, nil
	}
	c, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	e.conn = c
	return c, nil
}

// Close closes every connection; later Gets fail. The connections close
// in parallel (each waits for its SFTP reader to end), the jump hosts after
// the hosts that tunnel through them.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closing = true
	hosts := slices.Collect(maps.Values(p.hosts))
	jumps := slices.Collect(maps.Values(p.jumps))
	p.mu.Unlock()
	err := closeEntries(hosts)
	return errors.Join(err, closeEntries(jumps))
}

func closeEntries(entries []*poolEntry) error {
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// close ends the entry's connection, if it has one.
func (e *poolEntry) close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn == nil {
		return nil
	}
	err := e.conn.Close()
	e.conn = nil
	if errors.Is(err, errClosed) {
		return nil
	}
	return err
}
