package hubflow

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// Dedup records the idempotency keys of messages a consumer has processed,
// so a redelivery of one of them is acknowledged without running the
// handler again (WithDedup). The consumer calls Seen before the handler and
// Record after it succeeded, then acknowledges.
//
// What it covers: a crash, a lost connection or a lost acknowledgement after
// Record — the message comes back after the ack wait, Seen says so, and the
// handler is not called. Within one process, two deliveries of the same key
// never run the handler at the same time.
//
// What it does not cover: a crash after the handler's side effect and before
// Record. The redelivery then runs the handler a second time. Only a side
// effect that is itself idempotent, keyed by Delivery.IdempotencyKey (a
// unique key in the database the handler writes to, or the record written in
// the same transaction as the side effect), closes that gap. Two processes
// sharing a durable also need a store whose Seen/Record they share, and even
// then may both pass Seen for a message redelivered while the first was still
// working: keep handlers well inside the ack wait (or call
// Delivery.InProgress) and make the side effect idempotent.
type Dedup interface {
	// Seen reports whether key was recorded.
	Seen(ctx context.Context, key string) (bool, error)
	// Record marks key as processed.
	Record(ctx context.Context, key string) error
}

// MemoryDedup is a Dedup in memory, holding the most recent keys up to a
// capacity. It does not survive the process: it covers redeliveries after a
// lost connection or a lost acknowledgement, not after a restart.
type MemoryDedup struct {
	mu    sync.Mutex
	keys  map[string]struct{}
	order []string // ring of keys, oldest evicted first
	next  int
}

// NewMemoryDedup keeps up to capacity keys (at least 1).
func NewMemoryDedup(capacity int) *MemoryDedup {
	capacity = max(capacity, 1)
	return &MemoryDedup{keys: make(map[string]struct{}, capacity), order: make([]string, capacity)}
}

func (d *MemoryDedup) Seen(_ context.Context, key string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.keys[key]
	return ok, nil
}

func (d *MemoryDedup) Record(_ context.Context, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.keys[key]; ok {
		return nil
	}
	if old := d.order[d.next]; old != "" {
		delete(d.keys, old)
	}
	d.order[d.next] = key
	d.next = (d.next + 1) % len(d.order)
	d.keys[key] = struct{}{}
	return nil
}

// FileDedup is a Dedup in an append-only file of keys, one per line, so the
// record survives a restart of the process (not the loss of its disk: put
// the file on a persistent volume). With sync, Record returns only once the
// key is on disk. The file grows by one line per message: rotate it with the
// stream's retention (keys older than MaxAge cannot be redelivered).
type FileDedup struct {
	mu   sync.Mutex
	f    *os.File
	sync bool
	keys map[string]struct{}
}

// OpenFileDedup opens (creating if needed) the record at path and loads the
// keys it holds.
func OpenFileDedup(path string, sync bool) (*FileDedup, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("hubflow: opening dedup record: %w", err)
	}
	d := &FileDedup{f: f, sync: sync, keys: map[string]struct{}{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if k := sc.Text(); k != "" {
			d.keys[k] = struct{}{}
		}
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("hubflow: reading dedup record %s: %w", path, err)
	}
	return d, nil
}

func (d *FileDedup) Seen(_ context.Context, key string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.keys[key]
	return ok, nil
}

func (d *FileDedup) Record(_ context.Context, key string) error {
	if strings.ContainsAny(key, "\r\n") {
		return fmt.Errorf("hubflow: dedup key %q holds a line break", key)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return errors.New("hubflow: dedup record is closed")
	}
	if _, ok := d.keys[key]; ok {
		return nil
	}
	if _, err := d.f.WriteString(key + "\n"); err != nil {
		return fmt.Errorf("hubflow: writing dedup record: %w", err)
	}
	if d.sync {
		if err := d.f.Sync(); err != nil {
			return fmt.Errorf("hubflow: syncing dedup record: %w", err)
		}
	}
	d.keys[key] = struct{}{}
	return nil
}

// Len is how many keys the record holds.
func (d *FileDedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys)
}

// Close closes the file.
func (d *FileDedup) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}
