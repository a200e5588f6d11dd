package hubflow

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/pkg/binding"
)

// clock is a test's time, moved by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func lines(t testing.TB, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return n
}

// Keys older than the retention (what the stream can still deliver) are
// forgotten, in memory and, once they outnumber the live ones, in the file;
// a key inside the retention is still known after a restart.
func TestFileDedupForgetsKeysPastRetention(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "record")
	clk := &clock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	d, err := openFileDedup(path, FileDedupOptions{Retention: time.Hour}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		if err := d.Record(ctx, fmt.Sprint("old-", i)); err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Millisecond)
	}
	clk.advance(2 * time.Hour)
	if err := d.Record(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if n := d.Len(); n != 1 {
		t.Errorf("%d keys held, want only the one inside the retention", n)
	}
	if seen, _ := d.Seen(ctx, "old-1"); seen {
		t.Error("a key past the retention is still known")
	}
	if n := lines(t, path); n != 1 {
		t.Errorf("the file holds %d lines after compaction, want 1", n)
	}
	d.Close()

	clk.advance(30 * time.Minute)
	d, err = openFileDedup(path, FileDedupOptions{Retention: time.Hour}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if seen, _ := d.Seen(ctx, "new"); !seen {
		t.Error("a key inside the retention was lost across a restart")
	}
}

// A crash mid-compaction leaves the old record and a partial temporary
// file: the record is the old file, whole. Lines from before keys carried
// times count as recorded at opening.
func TestFileDedupSurvivesACrashDuringCompaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "record")
	if err := os.WriteFile(path, []byte("legacy-1\nlegacy-2\n1765065600000000000\tdated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", []byte("1765065600000000000\tpart"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Unix(0, 1765065600000000000).Add(time.Minute)}
	d, err := openFileDedup(path, FileDedupOptions{Retention: time.Hour}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, k := range []string{"legacy-1", "legacy-2", "dated"} {
		if seen, _ := d.Seen(ctx, k); !seen {
			t.Errorf("key %s lost", k)
		}
	}
	if seen, _ := d.Seen(ctx, "part"); seen {
		t.Error("a key only in the crashed rewrite was taken as recorded")
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("the crashed rewrite is still there: %v", err)
	}
}

// Past MaxKeys the oldest keys go first.
func TestFileDedupKeepsAtMostMaxKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "record")
	d, err := OpenFileDedupWith(path, FileDedupOptions{MaxKeys: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := range 3000 {
		if err := d.Record(ctx, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.Len(); n != 100 {
		t.Errorf("%d keys held, want 100", n)
	}
	if seen, _ := d.Seen(ctx, "k2999"); !seen {
		t.Error("the newest key was forgotten")
	}
	if seen, _ := d.Seen(ctx, "k0"); seen {
		t.Error("the oldest key is still held")
	}
	if n := lines(t, path); n > 2*100+1024 {
		t.Errorf("the file holds %d lines for 100 keys", n)
	}
}

// A Consumer gives a record without its own retention the binding's
// max-age.
func TestConsumerHandsItsMaxAgeToTheRecord(t *testing.T) {
	h := startHub(t)
	h.stream(t, "AGED", "ExactlyOnce", "aged")
	h.durable(t, "AGED", "w", "ExactlyOnce", time.Second)
	d, err := OpenFileDedup(filepath.Join(t.TempDir(), "record"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b := consumerBinding(h.srv.URL(), "AGED", "w", "ExactlyOnce", time.Second)
	b.MaxAge = 72 * time.Hour
	c, err := NewConsumer(ctxT(t), b, quiet(), WithDedup(d))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if d.opts.Retention != 72*time.Hour {
		t.Errorf("record retention %s, want the binding's max-age", d.opts.Retention)
	}
}

// The producer remembers a bounded number of subject verdicts, however
// many distinct subjects it publishes on, and still answers right.
func TestProducerSubjectCacheIsBounded(t *testing.T) {
	p := &Producer{b: binding.Binding{Subjects: []string{"orders.>"}}}
	for i := range 3 * maxCachedSubjects {
		if !p.allowed(fmt.Sprint("orders.", i)) {
			t.Fatalf("orders.%d refused", i)
		}
		if n := p.subjectsSeen.len(); n > maxCachedSubjects {
			t.Fatalf("%d subjects cached, bound %d", n, maxCachedSubjects)
		}
	}
	if p.allowed("payments.1") {
		t.Error("payments.1 allowed by orders.>")
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// One million distinct subjects through the producer's check: the bounded
// cache against an unbounded map (what the producer held before), in the
// same run.
func BenchmarkProducerSubjectsMillion(b *testing.B) {
	const n = 1_000_000
	subjects := make([]string, n)
	for i := range subjects {
		subjects[i] = fmt.Sprint("orders.", i)
	}
	for range b.N {
		base := heapAfterGC()
		p := &Producer{b: binding.Binding{Subjects: []string{"orders.>"}}}
		for _, s := range subjects {
			p.allowed(s)
		}
		bounded := heapAfterGC() - base
		runtime.KeepAlive(p)

		base = heapAfterGC()
		unbounded := map[string]bool{}
		for _, s := range subjects {
			unbounded[s] = true
		}
		all := heapAfterGC() - base
		runtime.KeepAlive(unbounded)

		b.ReportMetric(float64(bounded), "bounded-heap-B")
		b.ReportMetric(float64(all), "unbounded-heap-B")
		b.ReportMetric(float64(bounded)/float64(all), "bounded/unbounded")
	}
}

// One million keys through a FileDedup, one per millisecond of a test
// clock, with a 10s retention (10,000 keys live), against the same keys
// with no retention and room for all, in the same run.
func BenchmarkFileDedupMillionKeys(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	run := func(o FileDedupOptions) (heap uint64, fileBytes int64, held int) {
		path := filepath.Join(b.TempDir(), "record")
		clk := &clock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
		base := heapAfterGC()
		d, err := openFileDedup(path, o, clk.now)
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if err := d.Record(ctx, "ledger:"+strings.Repeat("0", 8)+fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
			clk.advance(time.Millisecond)
		}
		heap = heapAfterGC() - base
		held = d.Len()
		d.Close()
		st, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		return heap, st.Size(), held
	}
	for range b.N {
		bh, bf, bk := run(FileDedupOptions{Retention: 10 * time.Second})
		uh, uf, uk := run(FileDedupOptions{MaxKeys: 2 * n})
		b.ReportMetric(float64(bk), "bounded-keys")
		b.ReportMetric(float64(bh), "bounded-heap-B")
		b.ReportMetric(float64(bf), "bounded-file-B")
		b.ReportMetric(float64(uk), "unbounded-keys")
		b.ReportMetric(float64(uh), "unbounded-heap-B")
		b.ReportMetric(float64(uf), "unbounded-file-B")
		b.ReportMetric(float64(bh)/float64(uh), "heap-bounded/unbounded")
	}
}
