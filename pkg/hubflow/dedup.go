package hubflow

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Dedup records the idempotency keys of messages a consumer has processed,
// so a redelivery of one of them is acknowledged without running the
// handler again (WithDedup). The consumer calls Seen before the handler and
// Record after it succeeded, then acknowledges.
//
// What it covers: a crash, a lost connection or a lost acknowledgement after
// Record — the message comes back after the ack wait, Seen says so, and the
// handler is not called. Within one Consumer, two deliveries of the same key
// never run the handler at the same time.
//
// What it does not cover: a crash after the handler's side effect and before
// Record. The redelivery then runs the handler a second time. Record runs
// beside the handler (the consumer hands it the key and goes on with the
// next message), so a crash can catch several keys in that gap, at most the
// messages not yet acknowledged. Only a side
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

// asyncRecorder is a Dedup that records without holding up its caller:
// then runs once key is recorded, or could not be. A Consumer acknowledges
// from there, so a group commit acknowledges all its keys at once.
type asyncRecorder interface {
	recordThen(key string, then func(error))
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

func (d *MemoryDedup) recordThen(key string, then func(error)) {
	then(d.Record(context.Background(), key))
}

// FileDedup is a Dedup in an append-only file, one key per line with the
// time it was recorded, so the record survives a restart of the process
// (not the loss of its disk: put the file on a persistent volume). With
// Sync, Record returns only once the key is on disk; Records made at the
// same time share one write and one fsync (a group commit), so a consumer
// confirming many messages at once pays one disk round trip for all of
// them.
//
// Memory and file stay bounded: a key older than Retention is forgotten,
// since the stream no longer holds its message and cannot deliver it again
// (a Consumer sets Retention to its binding's max-age when it is not set),
// and past MaxKeys the oldest keys are forgotten. The file is rewritten
// without the forgotten keys once they outnumber the live ones: into a new
// file, synced, then renamed over the old one, so a crash at any point
// leaves one complete record.
type FileDedup struct {
	mu        sync.Mutex
	path      string
	f         *os.File
	opts      FileDedupOptions
	keys      map[string]int64 // key → recorded at (Unix ns)
	order     []entry          // keys in the order recorded, oldest first
	head      int              // order[:head] are forgotten
	fileLines int              // lines in the file
	now       func() time.Time // time.Now; a test's clock

	// With Sync: lines written by the next group commit, the Records
	// waiting for it, and the keys not yet on disk with the group that
	// writes them. One goroutine writes and syncs, woken by kick.
	batch   []byte
	spare   []byte // the previous batch's buffer, for the next one
	commits int    // group commits made, for the benchmarks
	group   *syncGroup
	waiting map[string]*syncGroup
	kick    chan struct{}
	stopped chan struct{}
	closing bool
}

// syncGroup is the Records one write and one fsync answer.
type syncGroup struct {
	keys  []entry
	thens []func(error) // recordThen's, run after the commit
	done  chan struct{} // closed once err is set
	err   error
}

type entry struct {
	key string
	at  int64
}

// FileDedupOptions tune a FileDedup.
type FileDedupOptions struct {
	// Sync: Record returns only once the key is on disk (fsync).
	Sync bool
	// Retention: keys recorded longer ago are forgotten. Set it to the
	// Topic's retention.maxAge; zero keeps keys by MaxKeys only, unless a
	// Consumer given the record sets its binding's max-age.
	Retention time.Duration
	// MaxKeys bounds the keys held; past it the oldest are forgotten, and a
	// redelivery of one of those would run the handler again. Default
	// DefaultMaxDedupKeys.
	MaxKeys int
}

// DefaultMaxDedupKeys is FileDedupOptions.MaxKeys when unset: about 150 MB
// of memory for keys of 40 bytes.
const DefaultMaxDedupKeys = 1 << 20

// OpenFileDedup opens the record at path with the default options and
// sync as given.
func OpenFileDedup(path string, sync bool) (*FileDedup, error) {
	return OpenFileDedupWith(path, FileDedupOptions{Sync: sync})
}

// OpenFileDedupWith opens (creating if needed) the record at path and loads
// the keys it holds that are still within the bounds. Lines written before
// the record kept times count as recorded now.
func OpenFileDedupWith(path string, o FileDedupOptions) (*FileDedup, error) {
	return openFileDedup(path, o, time.Now)
}

func openFileDedup(path string, o FileDedupOptions, now func() time.Time) (*FileDedup, error) {
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxDedupKeys
	}
	// A temporary file left by a crash during a rewrite is incomplete: the
	// record is the file it was to replace.
	_ = os.Remove(path + ".tmp")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("hubflow: opening dedup record: %w", err)
	}
	d := &FileDedup{path: path, f: f, opts: o, keys: map[string]int64{}, now: now}
	loaded := now().UnixNano()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		d.fileLines++
		at, key := loaded, line
		if ts, k, ok := strings.Cut(line, "\t"); ok {
			if n, err := strconv.ParseInt(ts, 10, 64); err == nil {
				at, key = n, k
			}
		}
		d.remember(key, at)
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("hubflow: reading dedup record %s: %w", path, err)
	}
	if err := endLine(f); err != nil {
		f.Close()
		return nil, err
	}
	d.forget()
	if err := d.compactIfWorth(); err != nil {
		f.Close()
		return nil, err
	}
	if o.Sync {
		d.waiting, d.kick, d.stopped = map[string]*syncGroup{}, make(chan struct{}, 1), make(chan struct{})
		go d.syncLoop()
	}
	return d, nil
}

// endLine ends a last line a crash cut short, so the next key appended
// starts a line of its own instead of extending the cut one.
func endLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, st.Size()-1); err != nil {
		return fmt.Errorf("hubflow: reading dedup record: %w", err)
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("hubflow: repairing dedup record: %w", err)
	}
	return nil
}

// remember adds key, or moves it to now if known.
func (d *FileDedup) remember(key string, at int64) {
	d.keys[key] = at
	d.order = append(d.order, entry{key, at})
}

// forget drops the keys past the bounds, oldest first. An order entry whose
// key was recorded again later is skipped, not forgotten.
func (d *FileDedup) forget() {
	cutoff := int64(math.MinInt64)
	if d.opts.Retention > 0 {
		cutoff = d.now().Add(-d.opts.Retention).UnixNano()
	}
	for d.head < len(d.order) {
		e := d.order[d.head]
		at, live := d.keys[e.key]
		switch {
		case !live || at != e.at:
			// superseded by a later record of the same key
		case e.at < cutoff || len(d.keys) > d.opts.MaxKeys:
			delete(d.keys, e.key)
		default:
			return
		}
		d.order[d.head] = entry{}
		d.head++
		if d.head > 1024 && d.head > len(d.order)/2 {
			d.order = append([]entry(nil), d.order[d.head:]...)
			d.head = 0
		}
	}
}

// compactIfWorth rewrites the file with the live keys once the file holds
// more forgotten lines than live ones (and at least 1024 of them).
func (d *FileDedup) compactIfWorth() error {
	dead := d.fileLines - len(d.keys)
	if dead < 1024 || dead <= len(d.keys) {
		return nil
	}
	tmp := d.path + ".tmp"
	nf, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("hubflow: compacting dedup record: %w", err)
	}
	w := bufio.NewWriter(nf)
	for _, e := range d.order[d.head:] {
		if at, ok := d.keys[e.key]; ok && at == e.at {
			fmt.Fprintf(w, "%d\t%s\n", e.at, e.key)
		}
	}
	err = errors.Join(w.Flush(), nf.Sync(), nf.Close())
	if err == nil {
		err = os.Rename(tmp, d.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("hubflow: compacting dedup record: %w", err)
	}
	if dir, err := os.Open(filepath.Dir(d.path)); err == nil {
		_ = dir.Sync() // the rename itself on disk
		dir.Close()
	}
	f, err := os.OpenFile(d.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("hubflow: reopening dedup record: %w", err)
	}
	d.f.Close()
	d.f, d.fileLines = f, len(d.keys)
	return nil
}

// adoptRetention is how a Consumer hands over its binding's max-age.
func (d *FileDedup) adoptRetention(maxAge time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.opts.Retention == 0 && maxAge > 0 {
		d.opts.Retention = maxAge
		d.forget()
	}
}

func (d *FileDedup) Seen(_ context.Context, key string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forget()
	_, ok := d.keys[key]
	return ok, nil
}

func (d *FileDedup) Record(ctx context.Context, key string) error {
	if strings.ContainsAny(key, "\r\n\t") {
		return fmt.Errorf("hubflow: dedup key %q holds a line break or a tab", key)
	}
	if d.opts.Sync {
		return d.recordSynced(ctx, key)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return errors.New("hubflow: dedup record is closed")
	}
	if _, ok := d.keys[key]; ok {
		return nil
	}
	at := d.now().UnixNano()
	if _, err := fmt.Fprintf(d.f, "%d\t%s\n", at, key); err != nil {
		return fmt.Errorf("hubflow: writing dedup record: %w", err)
	}
	d.fileLines++
	d.remember(key, at)
	d.forget()
	return d.compactIfWorth()
}

// recordSynced adds key to the next group commit and waits for it. A key
// already waiting for a commit waits for that one.
func (d *FileDedup) recordSynced(ctx context.Context, key string) error {
	d.mu.Lock()
	g, err := d.enqueue(key)
	d.mu.Unlock()
	if g == nil {
		return err
	}
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return fmt.Errorf("hubflow: waiting for the dedup record's fsync: %w", ctx.Err())
	}
}

func (d *FileDedup) recordThen(key string, then func(error)) {
	if !d.opts.Sync || strings.ContainsAny(key, "\r\n\t") {
		then(d.Record(context.Background(), key))
		return
	}
	d.mu.Lock()
	g, err := d.enqueue(key)
	if g != nil {
		g.thens = append(g.thens, then)
	}
	d.mu.Unlock()
	if g == nil {
		then(err)
	}
}

// enqueue adds key to the next group commit and returns the group that
// writes it: nil when the key is on disk already or the record is closed
// (then with an error). d.mu is held.
func (d *FileDedup) enqueue(key string) (*syncGroup, error) {
	if d.f == nil || d.closing {
		return nil, errors.New("hubflow: dedup record is closed")
	}
	if g, pending := d.waiting[key]; pending {
		return g, nil
	}
	if _, known := d.keys[key]; known {
		return nil, nil
	}
	at := d.now().UnixNano()
	d.batch = append(append(strconv.AppendInt(d.batch, at, 10), '\t'), key...)
	d.batch = append(d.batch, '\n')
	// Seen says yes at once: the key is handled, and only a crash before
	// the commit (after which no ack was sent) could undo that.
	d.remember(key, at)
	if d.group == nil {
		d.group = &syncGroup{done: make(chan struct{})}
	}
	g := d.group
	g.keys = append(g.keys, entry{key, at})
	d.waiting[key] = g
	select {
	case d.kick <- struct{}{}:
	default: // a commit is already due; it takes this key too
	}
	return g, nil
}

// syncLoop writes and syncs one group at a time; whatever is recorded
// meanwhile forms the next group. It ends once Close closed kick, after
// committing what was left.
func (d *FileDedup) syncLoop() {
	defer close(d.stopped)
	for {
		_, open := <-d.kick
		d.mu.Lock()
		g, batch, f := d.group, d.batch, d.f
		d.group, d.batch, d.spare = nil, d.spare, nil
		d.mu.Unlock()
		if g != nil {
			_, err := f.Write(batch)
			if err == nil {
				err = f.Sync()
			}
			d.mu.Lock()
			d.commitDone(g, err)
			d.commits++
			d.spare = batch[:0]
			d.mu.Unlock()
			for _, then := range g.thens {
				then(g.err)
			}
		}
		if !open {
			return
		}
	}
}

// commitDone answers a group's Records. Keys whose commit failed are
// forgotten, so recording them again writes them again.
func (d *FileDedup) commitDone(g *syncGroup, err error) {
	for _, e := range g.keys {
		delete(d.waiting, e.key)
		if err != nil && d.keys[e.key] == e.at {
			delete(d.keys, e.key)
		}
	}
	d.fileLines += len(g.keys)
	if err != nil {
		g.err = fmt.Errorf("hubflow: writing dedup record: %w", err)
	} else {
		d.forget()
		g.err = d.compactIfWorth()
	}
	close(g.done)
}

// Len is how many keys the record holds.
func (d *FileDedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys)
}

// Close commits what is waiting for a commit and closes the file.
func (d *FileDedup) Close() error {
	d.mu.Lock()
	if d.kick != nil {
		if !d.closing {
			d.closing = true
			close(d.kick)
		}
		d.mu.Unlock()
		<-d.stopped
		d.mu.Lock()
	}
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}
