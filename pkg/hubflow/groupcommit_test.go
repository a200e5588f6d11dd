package hubflow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Records made at once share group commits; each returns only once its key
// is in the file, so a record opened afterwards holds every one of them.
func TestFileDedupGroupCommitKeepsEveryKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "record")
	d, err := OpenFileDedup(path, true)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := d.Record(ctx, fmt.Sprint("key-", i)); err != nil {
				errs <- err
			}
		})
	}
	var thens sync.WaitGroup
	for i := range n {
		thens.Add(1)
		d.recordThen(fmt.Sprint("then-", i), func(err error) {
			if err != nil {
				errs <- err
			}
			thens.Done()
		})
	}
	wg.Wait()
	thens.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	d.mu.Lock()
	t.Logf("%d keys in %d commits", len(d.keys), d.commits)
	d.mu.Unlock()
	// Read the file as a restarted process would, before Close commits
	// anything more.
	again, err := OpenFileDedup(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	d.Close()
	if again.Len() != 2*n {
		t.Errorf("the file holds %d keys, want %d", again.Len(), 2*n)
	}
}

// A crash in the middle of a write leaves a cut last line. The next key must
// start a line of its own: appended to the cut one, it would be lost.
func TestFileDedupRepairsACutLastLine(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "record")
	if err := os.WriteFile(path, []byte("1765065600000000000\tdone\n17650656000"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sync := range []bool{false, true} {
		d, err := OpenFileDedup(path, sync)
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprint("after-crash-", sync)
		if err := d.Record(ctx, key); err != nil {
			t.Fatal(err)
		}
		d.Close()
		d, err = OpenFileDedup(path, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"done", key} {
			if seen, _ := d.Seen(ctx, k); !seen {
				t.Errorf("sync %v: key %s lost", sync, k)
			}
		}
		d.Close()
		if err := os.WriteFile(path, append(must(os.ReadFile(path)), "17650656"...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
