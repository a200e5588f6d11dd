package controllers

import (
	"fmt"
	"testing"

	"github.com/hubflow/hubflow/internal/hub"
)

func TestTargetOf(t *testing.T) {
	for _, tc := range []struct {
		in   hub.Advisory
		want *target
	}{
		{hub.Advisory{Kind: hub.StreamDeleted, Stream: "S"}, &target{stream: "S"}},
		{hub.Advisory{Kind: hub.StreamCall, Stream: "S"}, &target{stream: "S"}},
		{hub.Advisory{Kind: hub.StreamCreated, Stream: "S"}, &target{stream: "S"}},
		{hub.Advisory{Kind: hub.ConsumerCall, Stream: "S", Consumer: "c"}, &target{stream: "S", consumer: "c"}},
		{hub.Advisory{Kind: hub.ConsumerDeleted, Stream: "S", Consumer: "c"}, &target{stream: "S", consumer: "c"}},
		// The manager's own calls: only a stream it (re)created matters,
		// for the durables that stream lacks.
		{hub.Advisory{Kind: hub.StreamCreated, Stream: "S", Own: true}, &target{stream: "S", consumersOf: true}},
		{hub.Advisory{Kind: hub.StreamCall, Stream: "S", Own: true}, nil},
		{hub.Advisory{Kind: hub.ConsumerCall, Stream: "S", Consumer: "c", Own: true}, nil},
	} {
		got, ok := targetOf(tc.in)
		if (tc.want == nil) == ok || (ok && got != *tc.want) {
			t.Errorf("targetOf(%+v) = %+v, %v; want %+v", tc.in, got, ok, tc.want)
		}
	}
}

// Reports about one target merge into one; past the limit the set says
// "reconcile everything" rather than forgetting anything.
func TestPendingSetMergesAndNeverForgets(t *testing.T) {
	p := newPendingSet(3)
	for range 1000 {
		p.add(target{stream: "A"}, hub.StreamUpdated)
		p.add(target{stream: "A", consumer: "w"}, hub.ConsumerCall)
	}
	<-p.ready
	got, overflow := p.take()
	if len(got) != 2 || overflow {
		t.Fatalf("took %+v (overflow %v), want two merged reports", got, overflow)
	}
	select {
	case <-p.ready:
		t.Fatal("a token without reports")
	default:
	}
	for i := range 5 {
		p.add(target{stream: fmt.Sprint("S", i)}, hub.StreamCall)
	}
	<-p.ready
	if got, overflow := p.take(); !overflow {
		t.Fatalf("took %+v without overflow, though 5 targets exceed the limit of 3", got)
	}
	p.add(target{stream: "B"}, hub.StreamCall)
	if got, overflow := p.take(); len(got) != 1 || overflow {
		t.Fatalf("after an overflow the set starts afresh: took %+v (overflow %v)", got, overflow)
	}
}
